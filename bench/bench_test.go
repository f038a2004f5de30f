package main

import (
	"bufio"
	"errors"
	"hash/crc32"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
)

// fakeServer answers each command line the client sends with the next canned reply (the tag
// "TAG" in it is replaced by the command's tag) and records the command lines.
func fakeServer(t *testing.T, greeting string, replies ...string) (*imapConn, *[]string) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	var got []string
	done := make(chan struct{})
	t.Cleanup(func() { server.Close(); <-done })
	go func() {
		defer close(done)
		server.Write([]byte(greeting))
		r := bufio.NewReader(server)
		for _, reply := range replies {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			got = append(got, line)
			tag, _, _ := strings.Cut(line, " ")
			if strings.HasPrefix(reply, "+") {
				// a SASL challenge: wait for the client's answer, then refuse
				server.Write([]byte(reply))
				ans, _ := r.ReadString('\n')
				got = append(got, strings.TrimRight(ans, "\r\n"))
				server.Write([]byte(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"))
				continue
			}
			server.Write([]byte(strings.ReplaceAll(reply, "TAG", tag)))
		}
	}()
	c := newIMAPConn(client)
	client.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
	line, err := c.readLine()
	if err != nil || !strings.HasPrefix(string(line), "* OK") {
		t.Fatalf("greeting: %q, %v", line, err)
	}
	return c, &got
}

func TestFetchAllCountsLiterals(t *testing.T) {
	body1 := "Subject: one\r\n\r\nhello {5}\r\n"
	body2 := "Subject: two\r\n\r\n" + strings.Repeat("x", 70000) + ")\r\nb1 OK inside a literal\r\n"
	c, got := fakeServer(t, "* OK ready\r\n",
		"* 1 FETCH (UID 1 BODY[] {"+strconv.Itoa(len(body1))+"}\r\n"+body1+")\r\n"+
			"* 2 FETCH (UID 2 BODY[] {"+strconv.Itoa(len(body2))+"}\r\n"+body2+" FLAGS (\\Seen))\r\n"+
			"* 3 FETCH (FLAGS (\\Seen))\r\nTAG OK Fetch completed.\r\n",
		"* 3 FETCH (UID 3 BODY[] {0}\r\n)\r\nTAG OK Fetch completed.\r\n",
	)
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	msgs, n, err := c.fetchAll(4, 2, sum)
	if err != nil {
		t.Fatal(err)
	}
	if msgs != 3 || n != int64(len(body1)+len(body2)) {
		t.Fatalf("got %d messages, %d bytes; want 3, %d", msgs, n, len(body1)+len(body2))
	}
	want := crc32.Checksum([]byte(body1+body2), crc32.MakeTable(crc32.Castagnoli))
	if sum.Sum32() != want {
		t.Fatal("checksum does not cover exactly the literal bodies")
	}
	if len(*got) != 2 || (*got)[0] != "b1 UID FETCH 1:2 (BODY.PEEK[])" || (*got)[1] != "b2 UID FETCH 3:3 (BODY.PEEK[])" {
		t.Fatalf("commands: %q", *got)
	}
}

func TestExamine(t *testing.T) {
	c, _ := fakeServer(t, "* OK ready\r\n",
		"* FLAGS (\\Seen)\r\n* 10000 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 17] UIDs valid\r\n"+
			"* OK [UIDNEXT 10001] Predicted next UID\r\nTAG OK [READ-ONLY] Examine completed.\r\n")
	exists, next, err := c.examine("INBOX")
	if err != nil || exists != 10000 || next != 10001 {
		t.Fatalf("examine: %d, %d, %v", exists, next, err)
	}
}

// A refused login or XOAUTH2 exchange is an error that quotes the server, never the secret.
func TestRefusalHidesSecrets(t *testing.T) {
	const password, token = `app"pass\word-1234`, "at-secret-token-5678"
	c, got := fakeServer(t, "* OK ready\r\n",
		"TAG NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
		"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
	err := c.login("carol", password)
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") {
		t.Fatalf("login: %v", err)
	}
	err2 := c.authXOAUTH2("carol@example.test", token)
	if !errors.Is(err2, errRefused) {
		t.Fatalf("xoauth2: %v", err2)
	}
	for _, e := range []error{err, err2} {
		if strings.Contains(e.Error(), "pass") || strings.Contains(e.Error(), "secret") {
			t.Fatalf("error shows a secret: %v", e)
		}
	}
	if (*got)[0] != `b1 LOGIN "carol" "app\"pass\\word-1234"` {
		t.Fatalf("LOGIN line: %q", (*got)[0])
	}
	if !strings.HasPrefix((*got)[1], "b2 AUTHENTICATE XOAUTH2 ") || (*got)[2] != "" {
		t.Fatalf("XOAUTH2 exchange: %q", (*got)[1:])
	}
}

func TestLiteralSize(t *testing.T) {
	for line, want := range map[string]int{
		"* 1 FETCH (BODY[] {123}\r\n": 123,
		"* 1 FETCH (BODY[] {0}\r\n":   0,
		"* OK {x}\r\n":                -1,
		"* OK done\r\n":               -1,
		"* OK }\r\n":                  -1,
	} {
		n, ok := literalSize([]byte(line))
		if (want < 0 && ok) || (want >= 0 && (!ok || n != want)) {
			t.Errorf("literalSize(%q) = %d, %v", line, n, ok)
		}
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 10; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if q := quantile(d, 0.5); q != 5*time.Millisecond {
		t.Errorf("median = %v", q)
	}
	if q := quantile(d, 0.9); q != 9*time.Millisecond {
		t.Errorf("p90 = %v", q)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestWriteReportKeepsHandWrittenText(t *testing.T) {
	p := filepath.Join(t.TempDir(), "docs", "benchmarks.md")
	if err := writeReport(p, reportBegin, reportEnd, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(b), "# Benchmarks") || !strings.Contains(string(b), reportBegin+"\nfirst\n"+reportEnd+"\n") {
		t.Fatalf("new file:\n%s", b)
	}
	edited := strings.Replace(string(b), reportBegin, "Hand-written analysis.\n\n"+reportBegin, 1) + "\nAfter.\n"
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(p, reportBegin, reportEnd, []byte("second\n")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	s := string(b)
	if strings.Contains(s, "first") || !strings.Contains(s, "Hand-written analysis.\n\n"+reportBegin+"\nsecond\n"+reportEnd+"\n\nAfter.\n") {
		t.Fatalf("rewritten file:\n%s", s)
	}
}

func TestMaildirSize(t *testing.T) {
	md := t.TempDir()
	os.MkdirAll(filepath.Join(md, "cur"), 0o755)
	for _, n := range []string{"1.M1P1.e2e,S=10,W=12:2,S", "2.M2P1.e2e,S=100,W=103:2,S"} {
		os.WriteFile(filepath.Join(md, "cur", n), nil, 0o644)
	}
	c, s, err := maildirSize(md)
	if err != nil || c != 2 || s != 115 {
		t.Fatalf("maildirSize = %d, %d, %v", c, s, err)
	}
}

func TestWriteReportKeepsTheOtherSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := writeReport(p, reportBegin, reportEnd, []byte("serve 1\n")); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(p, tokenBegin, tokenEnd, []byte("token 1\n")); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(p, reportBegin, reportEnd, []byte("serve 2\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	if !strings.Contains(s, reportBegin+"\nserve 2\n"+reportEnd+"\n") || !strings.Contains(s, tokenBegin+"\ntoken 1\n"+tokenEnd+"\n") ||
		strings.Contains(s, "serve 1") {
		t.Fatalf("file:\n%s", s)
	}
}

func TestPickTokenModes(t *testing.T) {
	ms, err := pickTokenModes("passphrase, key-file")
	if err != nil || len(ms) != 2 || ms[0].name != "key-file" || ms[1].name != "passphrase" {
		t.Fatalf("pickTokenModes = %v, %v", ms, err)
	}
	if _, err := pickTokenModes("key-file,agent-x"); err == nil || !strings.Contains(err.Error(), `"agent-x"`) {
		t.Fatalf("unknown mode: %v", err)
	}
	if ms, err := pickTokenModes(""); err != nil || len(ms) != 0 {
		t.Fatalf("no modes: %v, %v", ms, err)
	}
}

func TestOneTokenHidesWhatItRejects(t *testing.T) {
	if err := oneToken("abc.def\n"); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"", "\n", "two secret-words\n", "a\nb\n"} {
		err := oneToken(out)
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("oneToken(%q) = %v", out, err)
		}
	}
}

func TestParseSpawn(t *testing.T) {
	r, status, err := parseSpawn("2500000 1000000 500000 1976 0\n")
	if err != nil || status != 0 || r.wall != 2500*time.Microsecond || r.cpu != 1500*time.Microsecond || r.maxRSS != 1976 {
		t.Fatalf("parseSpawn = %+v, %d, %v", r, status, err)
	}
	for _, bad := range []string{"", "1 2 3 4\n", "1 2 3 4 5", "1 2 x 4 5\n"} {
		if _, _, err := parseSpawn(bad); err == nil {
			t.Errorf("parseSpawn(%q) accepted", bad)
		}
	}
}
