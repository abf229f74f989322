//go:build unix

package publisher

import (
	"os"
	"syscall"
)

// fsWritable reports why f, open at path (which names it), cannot take more writes: the process may not write
// to it, or its file system is read-only or full.
func fsWritable(f *os.File, path string) error {
	// W_OK (2): Access asks with the real ids, as the process writes.
	if err := syscall.Access(path, 2); err != nil {
		return err
	}
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &fs); err != nil {
		return err
	}
	if fs.Bavail == 0 {
		return syscall.ENOSPC
	}
	return nil
}
