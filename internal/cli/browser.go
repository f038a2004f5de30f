package cli

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// openBrowser opens url with $BROWSER when set (a colon-separated list of
// commands, each with an optional %s for the URL, as the Unix convention
// has it), else the platform's opener. It does not wait for the browser.
func openBrowser(url string) error {
	if b := os.Getenv("BROWSER"); b != "" {
		var last error
		for _, cmdline := range strings.Split(b, ":") {
			fields := strings.Fields(cmdline)
			if len(fields) == 0 {
				continue
			}
			args := fields[1:]
			if strings.Contains(cmdline, "%s") {
				for i, a := range args {
					args[i] = strings.ReplaceAll(a, "%s", url)
				}
			} else {
				args = append(args, url)
			}
			if last = start(fields[0], args...); last == nil {
				return nil
			}
		}
		return last
	}
	switch runtime.GOOS {
	case "darwin":
		return start("open", url)
	case "windows":
		return start("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no display")
		}
		return start("xdg-open", url)
	}
}

func start(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() //nolint:errcheck // the browser's exit status tells nothing about the login
	return nil
}
