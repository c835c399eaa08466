//go:build !unix

package durable

import "os"

// mapFile reads a file whole where mmap is not available.
func mapFile(path string) (b []byte, unmap func() error, err error) {
	b, err = os.ReadFile(path)
	return b, func() error { return nil }, err
}

// mapReserve does not map where mmap is not available; reads use the file.
func mapReserve(*os.File, int) ([]byte, func() error) { return nil, nil }
