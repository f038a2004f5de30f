package service

import (
	"encoding/xml"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the samples in docs/service from the generators")

// spec is a user's service with the binary at path.
func spec(p Program, exe string) Spec {
	return Spec{Program: p, Executable: exe, Config: "/home/you/.config/mailkey/config.toml",
		StateDir: "/home/you/.local/state/mailkey", Home: "/home/you"}
}

func TestSystemdUnit(t *testing.T) {
	unit := string(SystemdUnit(spec(Serve, "/opt/mail key/bin/mailkey")))
	for _, want := range []string{
		"\nType=notify\n", "\nNotifyAccess=main\n", "\nRestart=on-failure\n",
		"\nExecStart=\"/opt/mail key/bin/mailkey\" serve --log-format json\n",
		"\nEnvironment=MAILKEY_CONFIG=/home/you/.config/mailkey/config.toml\n",
		"\nEnvironment=MAILKEY_STATE_DIR=/home/you/.local/state/mailkey\n",
		"\nEnvironmentFile=-/home/you/.config/mailkey/service.env\n",
		"\nWantedBy=default.target\n", "\nNoNewPrivileges=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	// Namespaces need privileges a user manager may lack: the unit would not start.
	for _, bad := range []string{"ProtectSystem", "ProtectHome", "PrivateTmp", "User=", "MAILKEY_NO_KEYRING"} {
		if strings.Contains(unit, bad) {
			t.Errorf("user unit has %s:\n%s", bad, unit)
		}
	}

	sys := spec(Agent, "/usr/bin/mailkey")
	sys.System, sys.User = true, "mail"
	unit = string(SystemdUnit(sys))
	for _, want := range []string{"\nExecStart=/usr/bin/mailkey agent --log-format json\n", "\nUser=mail\n",
		"\nWantedBy=multi-user.target\n", "\nProtectSystem=strict\n", "\nReadWritePaths=/home/you/.local/state/mailkey\n",
		"\nEnvironment=MAILKEY_NO_KEYRING=1\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("system unit lacks %q:\n%s", want, unit)
		}
	}
}

func TestSystemdQuoting(t *testing.T) {
	for _, tc := range []struct{ in, exec, env string }{
		{"/usr/bin/mailkey", "/usr/bin/mailkey", "K=/usr/bin/mailkey"},
		{"/a b", `"/a b"`, `"K=/a b"`},
		{"/100%/x", "/100%%/x", "K=/100%%/x"},
		{"/$HOME", "/$$HOME", "K=/$HOME"},
		{`/a"b\c`, `"/a\"b\\c"`, `"K=/a\"b\\c"`},
	} {
		if got := execQuote(tc.in); got != tc.exec {
			t.Errorf("execQuote(%q) = %s, want %s", tc.in, got, tc.exec)
		}
		if got := pathQuote("K=" + tc.in); got != tc.env {
			t.Errorf("pathQuote(K=%q) = %s, want %s", tc.in, got, tc.env)
		}
	}
}

func TestSpecRefused(t *testing.T) {
	for name, s := range map[string]Spec{
		"relative binary":     {Executable: "mailkey", Config: "/c", StateDir: "/s"},
		"line break":          {Executable: "/bin/mailkey\nExecStartPre=/bin/evil", Config: "/c", StateDir: "/s"},
		"system without user": {Executable: "/bin/mailkey", Config: "/c", StateDir: "/s", System: true},
	} {
		if _, err := SystemdPlan(s, "/etc/systemd/system"); err == nil {
			t.Errorf("%s: SystemdPlan accepted it", name)
		}
	}
}

func TestSystemdPlan(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/home/you/.config")
	p, err := SystemdPlan(spec(Serve, "/usr/bin/mailkey"), UserUnitDir("/home/you"))
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "/home/you/.config/systemd/user/mailkey.service" {
		t.Errorf("file %s", p.File)
	}
	if got := p.Load[1].String(); got != "systemctl --user enable --now mailkey.service" {
		t.Errorf("load %s", got)
	}
	s := spec(Serve, "/usr/bin/mailkey")
	s.System, s.User = true, "you"
	if p, err = SystemdPlan(s, SystemUnitDir); err != nil || p.File != "/etc/systemd/system/mailkey.service" || p.Unload[0].String() != "systemctl disable --now mailkey.service" {
		t.Errorf("system plan %+v %v", p, err)
	}
}

// TestSystemdVerify hands the units to systemd itself: systemd-analyze verify loads them
// as the manager would (offline), checks every directive and that ExecStart is executable.
func TestSystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			t.Fatal("systemd-analyze not found: install the systemd package (test/e2e/install-deps.sh)")
		}
		t.Skip("systemd-analyze not found (Debian package systemd)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		t.Fatal(err)
	}
	// A folder with a space and a percent sign proves the quoting.
	dir := filepath.Join(t.TempDir(), "my 100% units")
	runtime := filepath.Join(t.TempDir(), "runtime")
	for _, d := range []string{dir, runtime} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "mail key")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	for _, system := range []bool{false, true} {
		for _, prog := range []Program{Serve, Agent} {
			s := spec(prog, link)
			s.Config = filepath.Join(dir, "config.toml")
			s.StateDir = filepath.Join(dir, "state $HOME")
			s.System, s.User = system, map[bool]string{true: "root"}[system]
			p, err := SystemdPlan(s, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.File, p.Content, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", p.File}
			if !system {
				args = []string{"--user", "verify", p.File}
			}
			cmd := exec.Command(analyze, args...)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "SYSTEMD_LOG_LEVEL=notice")
			out, err := cmd.CombinedOutput()
			// verify exits 0 on unknown directives too, warning about them: none may show.
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s\n%s", strings.Join(args, " "), err, out, p.Content)
			}
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	s := spec(Serve, "/Users/you/bin/mail<key>")
	s.Home = "/Users/you"
	p, err := LaunchdPlan(s, 501)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "/Users/you/Library/LaunchAgents/com.mailkey.serve.plist" || p.Load[0].String() != "launchctl bootstrap gui/501 /Users/you/Library/LaunchAgents/com.mailkey.serve.plist" {
		t.Errorf("plan %s %v", p.File, p.Load)
	}
	// The property list is well-formed XML, and says what launchd needs to know.
	var plist struct {
		Dict struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(p.Content, &plist); err != nil {
		t.Fatalf("plist is not XML: %v\n%s", err, p.Content)
	}
	text := string(p.Content)
	for _, want := range []string{"<string>/Users/you/bin/mail&lt;key&gt;</string>", "<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>",
		"<key>MAILKEY_STATE_DIR</key>\n    <string>/home/you/.local/state/mailkey</string>", "<string>/Users/you/Library/Logs/mailkey-serve.log</string>"} {
		if !strings.Contains(text, want) {
			t.Errorf("plist lacks %q:\n%s", want, text)
		}
	}
	s.System = true
	if _, err := LaunchdPlan(s, 501); err == nil {
		t.Error("LaunchdPlan made a system daemon")
	}
}

func TestWindowsService(t *testing.T) {
	s := Spec{Executable: `C:\Program Files\mailkey\mailkey.exe`, Config: `C:\Users\you\AppData\mailkey\config.toml`, StateDir: `C:\Users\you\AppData\mailkey\state`}
	w, err := s.Windows()
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "mailkey" || strings.Join(w.Args, " ") != "serve" || w.RestartDelay <= 0 ||
		strings.Join(w.Env, ";") != `MAILKEY_CONFIG=C:\Users\you\AppData\mailkey\config.toml;MAILKEY_STATE_DIR=C:\Users\you\AppData\mailkey\state` {
		t.Errorf("service %+v", w)
	}
	s.Program = Agent
	if _, err := s.Windows(); err == nil {
		t.Error("the agent became a Windows service")
	}
}

func TestJoin(t *testing.T) {
	if got := Join([]string{"launchctl", "bootstrap", "gui/501", "/Users/a b/x's.plist"}); got != `launchctl bootstrap gui/501 '/Users/a b/x'\''s.plist'` {
		t.Errorf("Join = %s", got)
	}
}

// TestSamples keeps docs/service in step with what mailkey service install writes for a
// user whose home is /home/you (/Users/you on macOS) and whose mailkey is /usr/local/bin/mailkey.
// go test ./internal/service -run TestSamples -update rewrites them.
func TestSamples(t *testing.T) {
	mac := spec(Serve, "/usr/local/bin/mailkey")
	mac.Home, mac.Config, mac.StateDir = "/Users/you", "/Users/you/.config/mailkey/config.toml", "/Users/you/.local/state/mailkey"
	macAgent := mac
	macAgent.Program = Agent
	for file, content := range map[string][]byte{
		"mailkey.service":         SystemdUnit(spec(Serve, "/usr/local/bin/mailkey")),
		"mailkey-agent.service":   SystemdUnit(spec(Agent, "/usr/local/bin/mailkey")),
		"com.mailkey.serve.plist": LaunchdPlist(mac),
		"com.mailkey.agent.plist": LaunchdPlist(macAgent),
	} {
		path := filepath.Join("..", "..", "docs", "service", file)
		if *update {
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(content) {
			t.Errorf("%s differs from what mailkey service install writes (%v): go test ./internal/service -run TestSamples -update", path, err)
		}
	}
}

func TestState(t *testing.T) {
	sd := &Plan{Kind: Systemd}
	ld := &Plan{Kind: Launchd}
	for _, tc := range []struct {
		p    *Plan
		out  string
		err  error
		want string
	}{
		{sd, "active\n", nil, "active"},
		{sd, "inactive\n", os.ErrProcessDone, "inactive"},
		{sd, "", os.ErrProcessDone, "unknown"},
		{ld, "gui/501/com.mailkey.serve = {\n\tactive count = 1\n\tstate = running\n", nil, "running"},
		{ld, "Could not find service", os.ErrProcessDone, "not loaded"},
	} {
		if got := tc.p.State(tc.out, tc.err); got != tc.want {
			t.Errorf("%s State(%q) = %q, want %q", tc.p.Kind, tc.out, got, tc.want)
		}
	}
}
