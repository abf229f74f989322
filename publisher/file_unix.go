//go:build unix

package publisher

import (
	"errors"
	"os"
	"syscall"
)

// fileWritable reports why f, opened at path, cannot take more writes: path names another file or none, the
// process may not write to it, or its file system is read-only or full.
func fileWritable(f *os.File, path string) error {
	open, err := f.Stat()
	if err != nil {
		return err
	}
	named, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !os.SameFile(open, named) {
		return errors.New("the path names another file now (moved or replaced)")
	}
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
