//go:build !linux

package metrics

import (
	"errors"
	"os"
)

// allocateKeepSize is not done here: the WAL's next records get their
// blocks when they are written.
func allocateKeepSize(*os.File, int64, int64) error { return errors.ErrUnsupported }
