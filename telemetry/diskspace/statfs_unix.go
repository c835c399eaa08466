//go:build unix

package diskspace

import "syscall"

// statfs is the space an unprivileged writer may still use (f_bavail:
// the root-reserved blocks do not count) and the filesystem's size.
func statfs(dir string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
