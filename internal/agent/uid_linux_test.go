package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// envOtherUser names the socket TestOtherUserHelper dials, as another user.
const envOtherUser = "MAILKEY_AGENT_TEST_SOCKET"

// nobody is the user the other-user test runs its client as.
const nobody = 65534

// TestRealOtherUserRefused runs a client as another user (it needs root to
// switch users) against an agent whose socket and folder were opened up
// for the test: the kernel's peer check alone must stop it, and the client
// refuses an agent of another user before it sends anything.
func TestRealOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching to another user needs root")
	}
	base, err := os.MkdirTemp("", "agent-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	_, s, logs := startIn(t, dir, tokenHandler(&calls))
	// Open what the agent keeps closed, so that only the peer check is left.
	for _, p := range []string{base, dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	// A copy of this test binary that the other user may run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "agent.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestOtherUserHelper$", "-test.v")
	cmd.Env = append(os.Environ(), envOtherUser+"="+s.Path(), "XDG_RUNTIME_DIR=")
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d: %v\n%s", nobody, err, out)
	}
	if !strings.Contains(string(out), "other user: refused") {
		t.Fatalf("client as uid %d did not run its checks:\n%s", nobody, out)
	}
	if strings.Contains(string(out), testToken) {
		t.Fatal("another user got the token")
	}
	if calls.Load() != 0 {
		t.Error("the handler ran for another user")
	}
	if l := logs.String(); !strings.Contains(l, "refused a connection from another user") || !strings.Contains(l, fmt.Sprintf("peer_uid=%d", nobody)) {
		t.Errorf("log: %s", l)
	}
}

// TestOtherUserHelper is the other user's side of TestRealOtherUserRefused.
func TestOtherUserHelper(t *testing.T) {
	path := os.Getenv(envOtherUser)
	if path == "" {
		t.Skip("run by TestRealOtherUserRefused")
	}
	// A raw connection: the agent hangs up without reading or answering.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial as uid %d: %v", os.Getuid(), err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	c.Write([]byte(`{"v":1,"account":"work"}` + "\n"))
	got, _ := io.ReadAll(c)
	c.Close()
	if len(got) != 0 {
		t.Fatalf("the agent answered another user with %d bytes", len(got))
	}
	// The client: an agent of another user is no agent.
	if _, err := Ask(context.Background(), filepath.Dir(path), Request{Account: "work"}); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("Ask as another user: %v", err)
	}
	t.Log("other user: refused")
}
