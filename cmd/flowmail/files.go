package main

import (
	"errors"
	"fmt"
	"github.com/flowmail/flowmail/internal/atomicfile"

	"github.com/pelletier/go-toml/v2"
)

// readSmallFile reads a file the user or a program of theirs wrote
// (config, contacts, passphrase, testnet files), refusing one over limit
// bytes rather than reading whatever is there into memory.
func readSmallFile(path string, limit int64) ([]byte, error) {
	b, err := atomicfile.ReadBounded(path, limit)
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: is it the right file?", err)
	}
	return b, err
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
