package proxy_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
)

// TestDrainBufferedKeepsTLSUsable pins the coalescing read of the relay:
// after draining the records TLS already holds with an expired deadline, the
// connection must still deliver every later byte, in order.
func TestDrainBufferedKeepsTLSUsable(t *testing.T) {
	srvCfg, cliCfg := proxytest.TLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var want bytes.Buffer
	for i := range 300 {
		want.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 100+i))
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data := want.Bytes()
		for len(data) > 0 { // one small record per write, as Dovecot sends them
			n := min(len(data), 150)
			if _, err := c.Write(data[:n]); err != nil {
				return
			}
			data = data[n:]
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && err == nil {
			n, err = proxy.DrainBuffered(c, buf, n)
		}
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", got.Len(), err)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("relayed %d bytes, want %d identical bytes", got.Len(), want.Len())
	}
}

// TestDrainBufferedLeavesPlainConns: only TLS is drained.
func TestDrainBufferedLeavesPlainConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	n, err := proxy.DrainBuffered(a, make([]byte, 10), 3)
	if n != 3 || err != nil {
		t.Fatalf("got %d, %v", n, err)
	}
}
