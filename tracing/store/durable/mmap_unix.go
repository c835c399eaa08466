//go:build unix

package durable

import (
	"os"
	"syscall"
)

// mapFile maps a file read-only, so a block's index costs page cache, not
// heap; unmap must be called once nothing refers to the bytes.
func mapFile(path string) (b []byte, unmap func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, func() error { return nil }, nil
	}
	b, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}

// mapReserve maps n bytes of f read-only from its start, also beyond its
// current end: bytes written later show through, and only bytes past the
// end of the file must not be read (SIGBUS). nil when it cannot.
func mapReserve(f *os.File, n int) (b []byte, unmap func() error) {
	if n <= 0 {
		return nil, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	return b, func() error { return syscall.Munmap(b) }
}
