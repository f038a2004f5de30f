package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Profile bounds.
const (
	httpTimeout  = 30 * time.Second
	pprofTopRows = 22 // lines of go tool pprof -top kept in the report
)

var httpClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// httpGet fetches a URL on loopback into w.
func httpGet(ctx context.Context, url string, timeout time.Duration, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// runtimeStats are Go runtime figures of mailkey serve, from its /metrics page.
type runtimeStats struct {
	goroutines, heapAlloc, heapInuse, stackInuse, nextGC float64
}

var runtimeMetrics = map[string]func(*runtimeStats) *float64{
	"go_goroutines":                 func(r *runtimeStats) *float64 { return &r.goroutines },
	"go_memstats_heap_alloc_bytes":  func(r *runtimeStats) *float64 { return &r.heapAlloc },
	"go_memstats_heap_inuse_bytes":  func(r *runtimeStats) *float64 { return &r.heapInuse },
	"go_memstats_stack_inuse_bytes": func(r *runtimeStats) *float64 { return &r.stackInuse },
	"go_memstats_next_gc_bytes":     func(r *runtimeStats) *float64 { return &r.nextGC },
}

// readRuntimeStats scrapes the status listener's /metrics (Prometheus text format).
func (b *bench) readRuntimeStats(ctx context.Context) (*runtimeStats, error) {
	var buf strings.Builder
	if err := httpGet(ctx, "http://"+b.status+"/metrics", httpTimeout, &buf); err != nil {
		return nil, err
	}
	rs := &runtimeStats{}
	found := 0
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if f := runtimeMetrics[name]; ok && f != nil {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err == nil {
				*f(rs) = v
				found++
			}
		}
	}
	if found < len(runtimeMetrics) {
		return nil, fmt.Errorf("/metrics: %d of %d Go runtime metrics found", found, len(runtimeMetrics))
	}
	return rs, nil
}

// profile fetches /debug/pprof/ENDPOINT from the profiling build into dir/profiles/FILE.pprof
// and returns the head of go tool pprof -top for it.
func (b *bench) profile(ctx context.Context, endpoint, file, query, sampleIndex string, timeout time.Duration) (string, error) {
	dir := filepath.Join(b.dir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, file+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	err = httpGet(ctx, "http://"+b.pprofAddr+"/debug/pprof/"+endpoint+query, timeout, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	args := []string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(pprofTopRows)}
	if sampleIndex != "" {
		args = append(args, "-sample_index="+sampleIndex)
	}
	out, err := exec.CommandContext(ctx, "go", append(args, b.bin, path)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var keep []string
	for _, l := range lines {
		// drop the binary's path and build id lines
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n"), nil
}

// profileFetch takes a CPU profile of mailkey serve during one extra, untimed proxy fetch.
func (b *bench) profileFetch(ctx context.Context, batch int, seconds int) (string, error) {
	type result struct {
		top string
		err error
	}
	done := make(chan result, 1)
	go func() {
		top, err := b.profile(ctx, "profile", "cpu-fetch", "?seconds="+strconv.Itoa(seconds), "", time.Duration(seconds)*time.Second+httpTimeout)
		done <- result{top, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the profile start first
	for i := 0; i < 10; i++ {
		if _, err := b.fetchOnce(ctx, viaProxy, batch); err != nil {
			return "", err
		}
		select {
		case r := <-done:
			return r.top, r.err
		default:
		}
	}
	r := <-done
	return r.top, r.err
}
