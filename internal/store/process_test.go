//go:build unix

package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runHelper is the second process of the cross-process tests. It reads
// the state folder and account from the environment and prints one word
// per step on stdout.
func runHelper(kind string) int {
	dir, account := os.Getenv("STORE_DIR"), os.Getenv("STORE_ACCOUNT")
	s, err := OpenFile(dir, testOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	ctx := context.Background()
	switch kind {
	case "crash":
		// Die by SIGKILL after the new record is written and synced but
		// before it replaces the old one.
		beforeRename = func() error {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		second := testRecord(account, "second")
		second.Updated = second.Updated.Add(time.Minute)
		s.Put(ctx, second)
		fmt.Fprintln(os.Stderr, "survived SIGKILL")
		return 3

	case "lock-contend":
		// The parent holds the lock: a bounded attempt must fail.
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := s.Lock(short, account)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			fmt.Println("got-lock-while-held", err)
			return 4
		}
		fmt.Println("blocked")
		// Once the parent lets go (it closes our stdin), we get it.
		bufio.NewReader(os.Stdin).ReadString('\n')
		unlock, err := s.Lock(ctx, account)
		if err != nil {
			fmt.Println("lock-failed", err)
			return 5
		}
		fmt.Println("acquired")
		unlock()
		return 0

	case "lock-hold":
		unlock, err := s.Lock(ctx, account)
		if err != nil {
			fmt.Println("lock-failed", err)
			return 5
		}
		fmt.Println("holding")
		bufio.NewReader(os.Stdin).ReadString('\n')
		unlock()
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper", kind)
	return 2
}

// helper starts the test binary as a second process.
type helper struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	out   *bufio.Reader
}

func startHelper(t *testing.T, kind, dir, account string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind, "STORE_DIR="+dir, "STORE_ACCOUNT="+account)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("helper stderr: %s", stderr.String())
		}
	})
	return &helper{cmd: cmd, stdin: in, out: bufio.NewReader(out)}
}

// expect reads the helper's next line and checks it.
func (h *helper) expect(t *testing.T, want string) {
	t.Helper()
	line, err := h.out.ReadString('\n')
	if got := strings.TrimSpace(line); got != want {
		t.Fatalf("helper said %q (read error %v), want %q", got, err, want)
	}
}

// TestKilledMidWrite kills a second process by SIGKILL between writing the
// new record and renaming it over the old one, as a crash would.
func TestKilledMidWrite(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	s := openTest(t, dir, nil)
	mustPut(t, s, testRecord("a", "first"))

	h := startHelper(t, "crash", dir, "a")
	err := h.cmd.Wait()
	var ee interface{ Sys() any }
	if !errors.As(err, &ee) {
		t.Fatalf("helper: %v, want it killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want SIGKILL", err)
	}

	// The half-done write is a dot-file, not a record.
	entries, _ := os.ReadDir(filepath.Join(dir, tokensDir))
	var temps int
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".a.age.tmp-") {
			temps++
		}
	}
	if temps != 1 {
		t.Errorf("want the killed write's temp file left behind, found %d", temps)
	}
	// The next reader adopts the complete record the killed write left: it
	// may hold the only copy of a rotated refresh token.
	s2 := openTest(t, dir, nil)
	if got := mustGet(t, s2, "a"); got.RefreshToken != "rt-second" || got.Recovered.IsZero() {
		t.Errorf("after a killed Put: %v, want the killed write's record, marked recovered", got)
	}
	if names, _ := s2.List(ctx); !slices.Equal(names, []string{"a"}) {
		t.Errorf("List = %v", names)
	}
	if left := leftoverNames(t, s2); len(left) != 0 {
		t.Errorf("left behind after the recovery: %v", left)
	}
	mustPut(t, s2, testRecord("a", "third"))
	if got := mustGet(t, s2, "a"); got.RefreshToken != "rt-third" || !got.Recovered.IsZero() {
		t.Errorf("Put after the crash: %v", got)
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	dir := stateDir(t)
	s := openTest(t, dir, nil)
	ctx := context.Background()

	t.Run("child waits for parent", func(t *testing.T) {
		unlock, err := s.Lock(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		h := startHelper(t, "lock-contend", dir, "a")
		h.expect(t, "blocked")
		unlock()
		h.stdin.Close()
		h.expect(t, "acquired")
		if err := h.cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	})

	t.Run("parent waits for child", func(t *testing.T) {
		h := startHelper(t, "lock-hold", dir, "a")
		h.expect(t, "holding")
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := s.Lock(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock while the child holds it: %v", err)
		}
		h.stdin.Close()
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		unlock, err := s.Lock(ctx, "a")
		if err != nil {
			t.Fatalf("Lock after the child let go: %v", err)
		}
		unlock()
	})
}
