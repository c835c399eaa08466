package metrics

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocateKeepSize allocates n bytes of f from off without changing its
// size (fallocate FALLOC_FL_KEEP_SIZE): later appends there need no new
// blocks. errors.ErrUnsupported when the filesystem cannot.
func allocateKeepSize(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errors.ErrUnsupported
	}
	return err
}
