package cli

import (
	"cmp"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"

	"github.com/mailkey/mailkey/internal/service"
	"github.com/mailkey/mailkey/internal/store"
)

// serviceCmd is `mailkey service`: mailkey serve (or the token agent) as a
// service of the platform's manager: systemd, launchd or Windows'.
type serviceCmd struct {
	Install   serviceInstallCmd   `cmd:"" help:"Install the service and start it, now and at every login or boot."`
	Uninstall serviceUninstallCmd `cmd:"" help:"Stop the service and remove it."`
	Status    serviceStatusCmd    `cmd:"" help:"Show whether the service is installed, current and running."`
}

// serviceFlags choose the service; every subcommand takes them, so that
// uninstall and status find what install wrote.
type serviceFlags struct {
	Agent  bool   `help:"The token agent (mailkey agent) instead of mailkey serve."`
	System bool   `help:"Linux: a system unit in /etc/systemd/system, started at boot, instead of a unit of your own systemd."`
	User   string `help:"With --system: the user it runs as, with that user's configuration and state (default: you)." placeholder:"NAME"`
}

type serviceInstallCmd struct {
	serviceFlags
	DryRun bool `name:"dry-run" help:"Print the service file and the commands; change nothing."`
}

type serviceUninstallCmd struct {
	serviceFlags
	DryRun bool `name:"dry-run" help:"Print what would be removed and the commands; change nothing."`
}

type serviceStatusCmd struct {
	serviceFlags
	JSON bool `help:"Print the status as JSON."`
}

// serviceStatus is what mailkey service status reports.
type serviceStatus struct {
	Service   string `json:"service"`
	Manager   string `json:"manager"`
	File      string `json:"file,omitempty"`
	Installed bool   `json:"installed"`
	// Current: the installed service is what mailkey service install would
	// write now (same binary, folders and options).
	Current bool   `json:"current"`
	State   string `json:"state"`
}

func (c *serviceInstallCmd) Run(e *env) error {
	b, err := c.backend()
	if err != nil {
		return err
	}
	return b.install(e, c.DryRun)
}

func (c *serviceUninstallCmd) Run(e *env) error {
	b, err := c.backend()
	if err != nil {
		return err
	}
	return b.uninstall(e, c.DryRun)
}

func (c *serviceStatusCmd) Run(e *env) error {
	b, err := c.backend()
	if err != nil {
		return err
	}
	st, err := b.status(e)
	if err != nil {
		return err
	}
	if c.JSON {
		return e.writeJSON(st)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "service\t%s (%s)\n", st.Service, st.Manager)
	if st.File != "" {
		fmt.Fprintf(tw, "file\t%s\n", st.File)
	}
	fmt.Fprintf(tw, "installed\t%s\n", yesNo(st.Installed))
	if st.Installed {
		fmt.Fprintf(tw, "current\t%s\n", yesNo(st.Current))
	}
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case !st.Installed:
		e.notef("install it with: mailkey service install%s", c.flags())
	case !st.Current:
		e.notef("it runs another binary or folders than this mailkey would: mailkey service install%s", c.flags())
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// flags repeats the flags that chose the service, for a hint.
func (f *serviceFlags) flags() string {
	s := ""
	if f.Agent {
		s += " --agent"
	}
	if f.System {
		s += " --system"
	}
	if f.User != "" {
		s += " --user " + f.User
	}
	return s
}

// serviceBackend installs, removes and reports on a service with the
// platform's manager (service_files.go, service_windows.go).
type serviceBackend interface {
	install(e *env, dryRun bool) error
	uninstall(e *env, dryRun bool) error
	status(e *env) (*serviceStatus, error)
}

// spec describes the service to install: this binary, and the
// configuration and state folders that mailkey uses now (or, with --user,
// the ones that user's mailkey would use).
func (f *serviceFlags) spec() (service.Spec, error) {
	s := service.Spec{System: f.System, User: f.User}
	if f.Agent {
		s.Program = service.Agent
	}
	if f.User != "" && !f.System {
		return s, errorf("add --system: mailkey service install --system --user "+f.User, "--user is for a system unit; your own unit runs as you")
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return s, errorf("run mailkey by its full path: /path/to/mailkey service install", "cannot find the path of the running mailkey: %v", err)
	}
	s.Executable = exe
	me, err := user.Current()
	if err != nil {
		return s, errorf("set --user to the user the service runs as", "cannot find who you are: %v", err)
	}
	if f.System && s.User == "" {
		s.User = me.Username
	}
	if s.User != "" && s.User != me.Username {
		u, err := user.Lookup(s.User)
		if err != nil {
			return s, errorf("create the user first, or name another with --user", "there is no user %s on this system", s.User)
		}
		s.Home = u.HomeDir
		// That user's mailkey ignores the XDG folders of this session.
		s.Config = cmp.Or(os.Getenv("MAILKEY_CONFIG"), filepath.Join(u.HomeDir, ".config", "mailkey", "config.toml"))
		s.StateDir = cmp.Or(os.Getenv(store.EnvStateDir), filepath.Join(u.HomeDir, ".local", "state", "mailkey"))
	} else {
		if s.Config, err = configPath(); err != nil {
			return s, err
		}
		if s.StateDir, err = stateDir(); err != nil {
			return s, err
		}
		if s.Home, err = os.UserHomeDir(); err != nil {
			return s, errorf("set HOME", "cannot find your home folder: %v", err)
		}
	}
	for _, p := range []*string{&s.Config, &s.StateDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return s, err
		}
	}
	return s, nil
}
