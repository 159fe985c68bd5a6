package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpVersionAndUnknownCommands: the ways a new user asks for help
// all print it, --version prints the version, and a word that is no
// command is called that, not "No help topic".
func TestHelpVersionAndUnknownCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "COMMANDS:"},
		{[]string{"h"}, "COMMANDS:"},
		{[]string{}, "COMMANDS:"},
		{[]string{"help", "send"}, "flowmail send - send an encrypted mail"},
		{[]string{"send", "--help"}, "--bcc"},
		{[]string{"contacts"}, "remember an address under a name"},
	} {
		out, stderr, err := runCLI(t, tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("flowmail %v: %v, want help with %q\nstdout: %s\nstderr: %s", tc.args, err, tc.want, out, stderr)
		}
	}
	out, _, err := runCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "flowmail version ") {
		t.Errorf("--version: %v, %q", err, out)
	}
	for _, args := range [][]string{{"frobnicate"}, {"contacts", "frobnicate"}, {"node", "frobnicate"}} {
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), `no command "frobnicate"`) || strings.Contains(err.Error(), "help topic") {
			t.Errorf("flowmail %v: %v, want an error saying there is no such command", args, err)
		}
	}
}

// TestLogFlagsAreChecked: a level that is none of the
// four is refused, by any command, from the command line or the config
// file.
func TestLogFlagsAreChecked(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--log-level", "verbose", "whoami"},
		{"--log-format", "xml", "whoami"},
	} {
		_, _, err := runCLI(t, append([]string{"--home", home}, args...)...)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("flowmail %v: %v, want it refused", args, err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte("log-level = \"verbose\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "--home", home, "node", "status")
	if err == nil || !strings.Contains(err.Error(), `"verbose"`) {
		t.Errorf("log-level = verbose in the config: %v, want it refused", err)
	}
}
