package service

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strconv"
)

// LaunchdLabel is the launchd label of a program.
func LaunchdLabel(p Program) string { return "com.mailkey." + p.Name() }

// LaunchdPlan is s as a launchd agent of the user uid, in
// ~/Library/LaunchAgents, loaded into the user's GUI domain.
func LaunchdPlan(s Spec, uid int) (*Plan, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.System {
		return nil, &UnsupportedError{What: "a launchd daemon: mailkey runs as a launchd agent of your user"}
	}
	label := LaunchdLabel(s.Program)
	file := filepath.Join(s.Home, "Library", "LaunchAgents", label+".plist")
	domain := "gui/" + strconv.Itoa(uid)
	bootstrap := Command{Args: []string{"launchctl", "bootstrap", domain, file}}
	bootout := Command{Args: []string{"launchctl", "bootout", domain + "/" + label}, Optional: true}
	return &Plan{
		Kind:    Launchd,
		Name:    label,
		File:    file,
		Content: LaunchdPlist(s),
		Load:    []Command{bootstrap},
		// bootout waits for the old process to exit; bootstrap then starts
		// the new file's.
		Reload: []Command{bootout, bootstrap},
		Unload: []Command{bootout},
		Status: Command{Args: []string{"launchctl", "print", domain + "/" + label}},
	}, nil
}

// LaunchdLog is where a launchd agent's output goes: launchd keeps none.
func LaunchdLog(s Spec) string {
	return filepath.Join(s.Home, "Library", "Logs", "mailkey-"+s.Program.Name()+".log")
}

// LaunchdPlist is the property list of s: started at login, started again
// when it exits with a failure (KeepAlive with SuccessfulExit false), its
// log in ~/Library/Logs.
func LaunchdPlist(s Spec) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	str := func(v string) string {
		var e bytes.Buffer
		xml.EscapeText(&e, []byte(v))
		return "<string>" + e.String() + "</string>"
	}
	label := LaunchdLabel(s.Program)
	w(`<?xml version="1.0" encoding="UTF-8"?>`)
	w(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`)
	w(`<!--`)
	w(`  mailkey %s as a launchd agent, written by mailkey service install.`, s.Program.Name())
	w(`  mailkey service status shows it; mailkey service uninstall removes it.`)
	w(``)
	w(`    launchctl kickstart -k gui/$(id -u)/%s     # restart`, label)
	w(`    tail -f ~/Library/Logs/mailkey-%s.log`, s.Program.Name())
	w(``)
	w(`  launchd stops it with SIGTERM: running sessions finish, and a token`)
	w(`  refresh already sent is waited for, so that its answer is saved.`)
	w(`-->`)
	w(`<plist version="1.0">`)
	w(`<dict>`)
	w(`  <key>Label</key>`)
	w(`  %s`, str(label))
	w(`  <key>ProgramArguments</key>`)
	w(`  <array>`)
	w(`    %s`, str(s.Executable))
	w(`    %s`, str(s.Program.Name()))
	w(`  </array>`)
	w(`  <key>EnvironmentVariables</key>`)
	w(`  <dict>`)
	for _, kv := range s.env() {
		w(`    <key>%s</key>`, kv[0])
		w(`    %s`, str(kv[1]))
	}
	w(`  </dict>`)
	w(`  <key>RunAtLoad</key>`)
	w(`  <true/>`)
	w(`  <key>KeepAlive</key>`)
	w(`  <dict>`)
	w(`    <key>SuccessfulExit</key>`)
	w(`    <false/>`)
	w(`  </dict>`)
	w(`  <key>ThrottleInterval</key>`)
	w(`  <integer>5</integer>`)
	w(`  <key>ExitTimeOut</key>`)
	w(`  <integer>200</integer>`)
	w(`  <key>Umask</key>`)
	w(`  <integer>63</integer>`)
	// Not Background: launchd would throttle the CPU and I/O of a proxy
	// that mail clients wait on.
	w(`  <key>ProcessType</key>`)
	w(`  <string>Standard</string>`)
	w(`  <key>StandardOutPath</key>`)
	w(`  %s`, str(LaunchdLog(s)))
	w(`  <key>StandardErrorPath</key>`)
	w(`  %s`, str(LaunchdLog(s)))
	w(`</dict>`)
	w(`</plist>`)
	return b.Bytes()
}
