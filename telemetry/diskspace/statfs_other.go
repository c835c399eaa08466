//go:build !unix

package diskspace

import "errors"

// statfs is not implemented here: Check lets every write try, and Report
// still classifies the writes that fail for lack of space.
func statfs(string) (free, size int64, err error) {
	return 0, 0, errors.New("diskspace: statfs not supported on this OS")
}
