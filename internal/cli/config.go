package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

type configCmd struct {
	Check configCheckCmd `cmd:"" help:"Validate the configuration and print what it defines."`
	Path  configPathCmd  `cmd:"" help:"Print the configuration file and state folder in use."`
}

type configCheckCmd struct {
	JSON bool `help:"Print the result as JSON."`
}

type checkedAccount struct {
	Name      string            `json:"name"`
	Provider  string            `json:"provider"`
	Email     string            `json:"email"`
	Mailbox   string            `json:"mailbox,omitempty"`
	Flow      string            `json:"flow,omitempty"`
	Tenant    string            `json:"tenant,omitempty"`
	Cloud     string            `json:"cloud,omitempty"`
	Protocols []string          `json:"protocols"`
	Servers   map[string]string `json:"servers"`
	Line      int               `json:"line"`
}

func (c *configCheckCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	var out []checkedAccount
	for _, a := range cfg.Accounts {
		ca := checkedAccount{Name: a.Name, Provider: a.Provider, Email: a.Email, Mailbox: a.Mailbox, Flow: a.Flow, Tenant: a.Tenant, Cloud: a.Cloud, Line: a.Line, Servers: map[string]string{}}
		for _, p := range a.Protocols {
			ca.Protocols = append(ca.Protocols, string(p))
		}
		for p, s := range a.Servers {
			ca.Servers[string(p)] = s.String()
		}
		out = append(out, ca)
	}
	if c.JSON {
		return e.writeJSON(map[string]any{"file": cfg.File, "ok": true, "accounts": out})
	}
	fmt.Fprintf(e.stdout, "%s: ok, %d account(s)\n", cfg.File, len(out))
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	for _, a := range out {
		var servers []string
		for _, p := range a.Protocols {
			servers = append(servers, a.Servers[p])
		}
		sort.Strings(servers)
		flow := a.Flow
		if flow == "" {
			flow = "login"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Provider, a.Email, flow, strings.Join(servers, " "))
	}
	return tw.Flush()
}

type configPathCmd struct {
	JSON bool `help:"Print the paths as JSON."`
}

func (c *configPathCmd) Run(e *env) error {
	cfgPath, err := configPath()
	if err != nil {
		return err
	}
	dir, err := stateDir()
	if err != nil {
		return err
	}
	if c.JSON {
		return e.writeJSON(map[string]string{"config": cfgPath, "state": dir})
	}
	fmt.Fprintf(e.stdout, "config\t%s\nstate\t%s\n", cfgPath, dir)
	return nil
}
