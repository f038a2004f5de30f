package config

import (
	"strings"
	"testing"
)

// TestProxyAgent: mailkey serve answers as a token agent unless [proxy]
// agent = false; anything but a boolean is refused.
func TestProxyAgent(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Load(writeFile(t, dir, "on.toml", "[proxy]\nimap = \"127.0.0.1:1143\"\n"))
	if err != nil || !cfg.Proxy.Agent {
		t.Fatalf("default: Agent = %v, %v; want true", cfg != nil && cfg.Proxy.Agent, err)
	}
	cfg, err = Load(writeFile(t, dir, "off.toml", "[proxy]\nagent = false\n"))
	if err != nil || cfg.Proxy.Agent {
		t.Fatalf("agent = false: %v", err)
	}
	_, err = Load(writeFile(t, dir, "bad.toml", "[proxy]\nagent = \"no\"\n"))
	if err == nil || !strings.Contains(err.Error(), "proxy.agent") {
		t.Fatalf("agent = \"no\": %v, want an error naming proxy.agent", err)
	}
}
