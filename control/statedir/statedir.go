// Package statedir keeps controllers' state as one JSON file per object in
// a directory, each written atomically and synced, so a process killed at
// any moment restarts from its last saved state or the one before it,
// never from a torn file.
package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is a directory of JSON state files; "" keeps nothing.
type Dir string

// path is the file of key (namespace/name).
func (d Dir) path(key string) string {
	return filepath.Join(string(d), strings.ReplaceAll(key, "/", "_")+".json")
}

// Save writes v as key's file: a temp file, fsync, rename, fsync of the
// directory.
func (d Dir) Save(key string, v any) error {
	if d == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(string(d), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), d.path(key)); err != nil {
		return err
	}
	dir, err := os.Open(string(d))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Remove deletes key's file, if any.
func (d Dir) Remove(key string) error {
	if d == "" {
		return nil
	}
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Load decodes every saved file into a new T. A file that does not decode is an error naming it: state
// is never silently dropped.
func Load[T any](d Dir, what string) ([]*T, error) {
	if d == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(string(d), "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*T
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%s state %s: %w", what, f, err)
		}
		out = append(out, v)
	}
	return out, nil
}
