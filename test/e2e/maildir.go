package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var bulkWords = strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco " +
	"laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse " +
	"cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia " +
	"deserunt mollit anim id est laborum meeting invoice report project deadline budget review schedule " +
	"update attached please find regards thanks")

// WriteBulkMaildir writes n RFC 5322 messages into the Maildir md (cur/, flagged seen), the
// same mix each time for the same seed: 74.5 % text/plain of 2-16 KB, 22 % multipart with a
// 23-90 KB attachment, 3.5 % with a 0.23-0.9 MB one (mean about 50 KiB). File names carry
// ,S= and ,W= so Dovecot need not stat them. It returns the total size in bytes. Ownership is
// the caller's business (Dovecot's mail user must own the files).
func WriteBulkMaildir(md string, n int, seed uint64) (int64, error) {
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o755); err != nil {
			return 0, err
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t0 := time.Now().Add(-time.Duration(n) * 10 * time.Minute).Unix()
	var total int64
	for i := 1; i <= n; i++ {
		t := t0 + int64(i)*600
		msg := bulkMessage(rng, i, time.Unix(t, 0).UTC())
		name := fmt.Sprintf("%d.M%06dP1.e2e,S=%d,W=%d:2,S", t, i, len(msg), len(msg))
		p := filepath.Join(md, "cur", name)
		if err := os.WriteFile(p, msg, 0o644); err != nil {
			return total, err
		}
		mt := time.Unix(t, 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			return total, err
		}
		total += int64(len(msg))
	}
	return total, nil
}

func bulkText(rng *rand.Rand, w *bufio.Writer, size int) {
	for n := 0; n < size; {
		words := 8 + rng.IntN(7)
		for j := 0; j < words; j++ {
			if j > 0 {
				w.WriteByte(' ')
				n++
			}
			word := bulkWords[rng.IntN(len(bulkWords))]
			w.WriteString(word)
			n += len(word)
		}
		w.WriteString("\r\n")
		n += 2
	}
}

func bulkMessage(rng *rand.Rand, i int, date time.Time) []byte {
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	from := fmt.Sprintf("sender%d@example.org", 1+rng.IntN(300))
	d := date.Format("Mon, 02 Jan 2006 15:04:05 +0000")
	subject := make([]string, 3+rng.IntN(6))
	for j := range subject {
		subject[j] = bulkWords[rng.IntN(len(bulkWords))]
	}
	fmt.Fprintf(w, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(w, "Received: from mx.example.org (mx.example.org [192.0.2.%d])\r\n", 1+rng.IntN(254))
	fmt.Fprintf(w, "\tby mail.example.test with ESMTPS id %016x\r\n\tfor <carol@example.test>; %s\r\n", rng.Uint64(), d)
	fmt.Fprintf(w, "From: Sender %d <%s>\r\nTo: Carol Example <carol@example.test>\r\n", i%300, from)
	fmt.Fprintf(w, "Subject: %s #%d\r\nDate: %s\r\n", strings.Join(subject, " "), i, d)
	fmt.Fprintf(w, "Message-ID: <bulk-%d-%08x@example.org>\r\nMIME-Version: 1.0\r\n", i, rng.Uint32())
	r := rng.Float64()
	if r < 0.745 {
		w.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		bulkText(rng, w, 2000+rng.IntN(14001))
		w.Flush()
		return []byte(sb.String())
	}
	att := 23000 + rng.IntN(67001)
	if r >= 0.965 {
		att = 230000 + rng.IntN(670001)
	}
	bnd := fmt.Sprintf("=_b%012x", rng.Uint64()&(1<<48-1))
	fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", bnd)
	fmt.Fprintf(w, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", bnd)
	bulkText(rng, w, 500+rng.IntN(3501))
	fmt.Fprintf(w, "--%s\r\nContent-Type: application/octet-stream; name=\"file%d.bin\"\r\n", bnd, i)
	fmt.Fprintf(w, "Content-Disposition: attachment; filename=\"file%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i)
	raw := make([]byte, att)
	for j := 0; j+8 <= len(raw); j += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			raw[j+k] = byte(v >> (8 * k))
		}
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	for len(b64) > 76 {
		w.WriteString(b64[:76])
		w.WriteString("\r\n")
		b64 = b64[76:]
	}
	w.WriteString(b64)
	fmt.Fprintf(w, "\r\n--%s--\r\n", bnd)
	w.Flush()
	return []byte(sb.String())
}
