package main

import (
	"fmt"
	"io"
	"os"

	"github.com/pelletier/go-toml/v2"
)

// readSmallFile reads a file the user or a program of theirs wrote
// (config, contacts, passphrase, testnet files), refusing one over limit
// bytes rather than reading whatever is there into memory.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes: is it the right file?", path, limit)
	}
	return b, nil
}

// maxConfigFile bounds a config file; a full one is about 2 KiB.
const maxConfigFile = 1 << 20

// readConfigFile reads a TOML config into its settings by name.
func readConfigFile(path string) (map[string]any, error) {
	b, err := readSmallFile(path, maxConfigFile)
	if err != nil {
		return nil, err
	}
	settings := map[string]any{}
	if err := toml.Unmarshal(b, &settings); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return settings, nil
}
