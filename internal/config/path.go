package config

import (
	"errors"
	"os"
	"path/filepath"
)

// Path returns the configuration file's path: $MAILKEY_CONFIG if set, else
// $XDG_CONFIG_HOME/mailkey/config.toml if XDG_CONFIG_HOME is an absolute
// path (the XDG Base Directory rules ignore relative ones), else
// ~/.config/mailkey/config.toml. The file need not exist.
func Path() (string, error) {
	if p := os.Getenv("MAILKEY_CONFIG"); p != "" {
		return p, nil
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "mailkey", "config.toml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("cannot find the configuration file: set MAILKEY_CONFIG, XDG_CONFIG_HOME or HOME")
	}
	return filepath.Join(home, ".config", "mailkey", "config.toml"), nil
}
