package readahead

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
)

// TestReadAheadDeliversEveryByte: whatever mix of blocking reads and
// read-ahead bursts the wrapper makes, the reader gets the stream as sent.
func TestReadAheadDeliversEveryByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := make([]byte, 3<<20)
	rand.Read(want)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)%70000)
			c.Write(rest[:n])
			rest = rest[n:]
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Wrap(raw)
	defer c.Close()
	if _, ok := c.(*readAheadConn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", c)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096) // small reads, as crypto/tls makes them
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d identical ones", got.Len(), len(want))
	}
}
