// Command mailkey-pprof is mailkey with a net/http/pprof listener, for profiling mailkey serve
// in benchmarks (go run ./bench -profile builds it). The listener starts only when
// MAILKEY_BENCH_PPROF names a loopback address (127.0.0.1:PORT); otherwise the program is
// mailkey itself.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"

	"github.com/mailkey/mailkey/internal/cli"
)

func main() {
	if addr := os.Getenv("MAILKEY_BENCH_PPROF"); addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(os.Stderr, "mailkey-pprof: MAILKEY_BENCH_PPROF must be a loopback address, not %q\n", addr)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mailkey-pprof: %v\n", err)
			os.Exit(2)
		}
		go http.Serve(ln, nil)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
