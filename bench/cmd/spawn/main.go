// Command spawn runs one program, waits for it and writes on descriptor 3 one line: its wall
// time, user and system CPU time (nanoseconds), peak resident memory (ru_maxrss, KiB) and exit
// status.
//
// The benchmark starts the programs it times through spawn because on Linux a child's
// ru_maxrss is at least the peak RSS of the process that forked it: Go forks with
// CLONE_VM|CLONE_VFORK, and exec carries the high-water mark of the memory it replaces into
// the child's. spawn itself stays below the peak of the smallest Go program; the benchmark,
// with the e2e stack's client code in it, does not. spawn uses the syscall package directly, so
// that nothing but the wait runs between fork and exit.
package main

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "" || os.Args[1][0] != '/' {
		os.Stderr.WriteString("usage: spawn /ABSOLUTE/PATH [ARG...] 3>RESULT\n")
		os.Exit(2)
	}
	syscall.CloseOnExec(3)
	start := time.Now()
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Stderr.WriteString("spawn: " + err.Error() + "\n")
		os.Exit(1)
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	wall := time.Since(start)
	if err != nil {
		os.Stderr.WriteString("spawn: wait: " + err.Error() + "\n")
		os.Exit(1)
	}
	b := strconv.AppendInt(nil, int64(wall), 10)
	for _, v := range []int64{ru.Utime.Nano(), ru.Stime.Nano(), ru.Maxrss, int64(ws.ExitStatus())} {
		b = strconv.AppendInt(append(b, ' '), v, 10)
	}
	if _, err := syscall.Write(3, append(b, '\n')); err != nil {
		os.Exit(1)
	}
}
