package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// Markers of the password-flood section in docs/benchmarks.md.
const (
	floodBegin = "<!-- bench:flood:begin -->"
	floodEnd   = "<!-- bench:flood:end -->"
)

// floodBench is the password-flood part's settings.
type floodBench struct {
	rounds int // first logins timed with and without the flood, each
	wrong  int // wrong passwords sent at once by the flooding client
}

// floodResult is the password-flood part: the first login of one client (the account name and
// its right app password, from 127.0.0.1) into a freshly started mailkey serve, alone and while
// another client (carol's address as login name, also from 127.0.0.1) has sent `wrong` wrong
// passwords at once just before. In a fresh process every password needs argon2id, so the
// flood's checks and the client's compete for the same slots.
type floodResult struct {
	date    time.Time
	command string
	machine machine
	floodBench
	quiet   []time.Duration
	cached  []time.Duration    // the second login alone: no argon2id
	flooded [2][]time.Duration // by floodKind: the same wrong password, different ones
	// how the flood's logins were answered, over all rounds
	floodNO, floodOther int
	floodFirstErr       string
}

// A flood is one of these, or none.
type floodKind int

const (
	noFlood   floodKind = -1
	sameWrong floodKind = 0 // one wrong password, sent again and again (a misconfigured client)
	manyWrong floodKind = 1 // a different wrong password each time (guessing)
)

func (k floodKind) String() string {
	switch k {
	case sameWrong:
		return "the same wrong password"
	case manyWrong:
		return "different wrong passwords"
	}
	return "alone"
}

// measureFlood times the rounds, alternating which kind comes first.
func (b *bench) measureFlood(ctx context.Context, f floodBench, progress func(string)) (*floodResult, error) {
	res := &floodResult{floodBench: f}
	kinds := []floodKind{noFlood, sameWrong, manyWrong}
	for i := range f.rounds {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			d, err := b.firstLogin(ctx, k, f.wrong, res)
			if err != nil {
				return nil, err
			}
			if k == noFlood {
				res.quiet = append(res.quiet, d)
			} else {
				res.flooded[k] = append(res.flooded[k], d)
			}
		}
		progress(fmt.Sprintf("password flood: round %d/%d", i+1, f.rounds))
	}
	return res, nil
}

// firstLogin starts mailkey serve, optionally sends the flood, times the right client's
// first login, waits for every flood reply and stops serve.
func (b *bench) firstLogin(ctx context.Context, flood floodKind, wrong int, res *floodResult) (time.Duration, error) {
	serve, err := b.startServe(ctx)
	if err != nil {
		return 0, err
	}
	b.serve = serve
	defer func() {
		serve.stop()
		b.serve = nil
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	var (
		conns []*imapConn
		sent  sync.WaitGroup
		done  sync.WaitGroup
		mu    sync.Mutex
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if flood != noFlood {
		for range wrong {
			c, err := dialIMAP(ctx, b.imapAddr, nil, nil)
			if err != nil {
				return 0, b.withLogs(fmt.Errorf("flood connection: %w", err))
			}
			c.setDeadline(time.Now().Add(5 * time.Minute))
			conns = append(conns, c)
		}
		for i, c := range conns {
			sent.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				tag := fmt.Sprintf("f%d", i)
				user, _ := quote(e2e.Carol)
				pw := "wrong"
				if flood == manyWrong {
					pw = fmt.Sprintf("wrong-%d", i)
				}
				_, werr := io.WriteString(c.conn, tag+" LOGIN "+user+" \""+pw+"\"\r\n")
				sent.Done()
				var err error = werr
				if err == nil {
					_, err = c.readResponse(tag, nil, false)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, errRefused):
					res.floodNO++
				default:
					res.floodOther++
					if res.floodFirstErr == "" {
						res.floodFirstErr = fmt.Sprint(err)
					}
				}
			}()
		}
		sent.Wait()
	}
	start := time.Now()
	c, err := b.dial(ctx, viaProxy, nil)
	d := time.Since(start)
	if err != nil {
		return 0, b.withLogs(fmt.Errorf("first login (%v): %w", flood, err))
	}
	c.logout()
	c.Close()
	done.Wait()
	if flood == noFlood {
		// The same login again costs no argon2id run: the difference is what one costs.
		start := time.Now()
		c, err := b.dial(ctx, viaProxy, nil)
		res.cached = append(res.cached, time.Since(start))
		if err != nil {
			return 0, b.withLogs(fmt.Errorf("second login: %w", err))
		}
		c.logout()
		c.Close()
	}
	return d, nil
}

// markdown renders the password-flood part's report.
func (r *floodResult) markdown(w io.Writer) {
	m := r.machine
	fmt.Fprintf(w, "### Password flood: results of %s\n\n", r.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command (as root, from the repository root): `%s`\n\n", r.command)
	fmt.Fprintf(w, "%d CPUs (%s), %s memory, %s; %s.\n\n", m.cpus, orDash(m.cpu), orDash(m.memory), orDash(m.kernel), m.goVer)
	fmt.Fprintf(w, "Each round starts a fresh `mailkey serve` three times (so every password needs argon2id) and times one "+
		"client's first IMAP login (connect, greeting, `LOGIN` with the account name and its right app password, "+
		"from 127.0.0.1): alone, and right after another client from 127.0.0.1 has sent %d wrong passwords at once "+
		"under carol's address as login name, either the same one each time (a misconfigured client) or a different "+
		"one each time (guessing); the order rotates each round.\n\n", r.wrong)
	qm, qx := quantile(r.quiet, 0.5), quantile(r.quiet, 1)
	cm := quantile(r.cached, 0.5)
	hash := qm - cm
	runs := func(d time.Duration) string {
		if hash <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(d)/float64(hash))
	}
	fmt.Fprintln(w, "| login | rounds | median | max | extra (median) | extra in argon2id runs |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| second login alone (remembered, no argon2id) | %d | %s | %s | | |\n", len(r.cached), ms(cm), ms(quantile(r.cached, 1)))
	fmt.Fprintf(w, "| first login alone | %d | %s | %s | | |\n", len(r.quiet), ms(qm), ms(qx))
	ok := true
	for _, k := range []floodKind{sameWrong, manyWrong} {
		fm, fx := quantile(r.flooded[k], 0.5), quantile(r.flooded[k], 1)
		fmt.Fprintf(w, "| first login during a flood of %s | %d | %s | %s | **%s** | %s |\n", k, len(r.flooded[k]), ms(fm), ms(fx), ms(fm-qm), runs(fm-qm))
		if k == sameWrong {
			ok = fm-qm < time.Second
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "One argon2id run costs about %s here (first login alone minus second login alone, medians): "+
		"the fair queue bounds the extra wait to the runs already under way when the client's check arrives, "+
		"and on 2 cores argon2id's 4 lanes also take the CPU the rest of the login needs.\n\n", ms(hash))
	fmt.Fprintf(w, "The floods' %d logins were answered: %d refused (`NO`), %d otherwise", 2*r.rounds*r.wrong, r.floodNO, r.floodOther)
	if r.floodFirstErr != "" {
		fmt.Fprintf(w, " (first: %s)", r.floodFirstErr)
	}
	fmt.Fprintf(w, ". Target: a misconfigured client's flood costs another client's first login under 1 s: %s.\n", verdict(ok))
}
