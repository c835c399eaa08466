//go:build !unix

package store

import "os"

// mapFile reads a file whole where mmap is not available.
func mapFile(path string) (b []byte, unmap func() error, err error) {
	b, err = os.ReadFile(path)
	return b, func() error { return nil }, err
}
