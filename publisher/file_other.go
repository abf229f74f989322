//go:build !unix

package publisher

import (
	"errors"
	"os"
)

// fileWritable reports why f, opened at path, cannot take more writes: path names another file or none.
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
	return nil
}
