package publisher

import (
	"errors"
	"fmt"
	"io"
)

// rewinder is the part of a file that undoing a short write needs; *os.File has it.
type rewinder interface {
	Seek(offset int64, whence int) (int64, error)
	Truncate(size int64) error
}

// lineWriter appends batches of whole NDJSON lines to w and never leaves a torn line behind for the next batch
// to be glued onto: after a failed or short write (disk full, file size limit) it truncates the file back to the
// end of the last complete write. When w cannot be truncated (a pipe, a terminal), the next write starts with a
// newline instead, so that only the torn line is lost to a reader, never the line after it. A lineWriter is not
// safe for concurrent use: its owner serializes the calls.
type lineWriter struct {
	w    io.Writer
	good int64 // offset just after the last complete write; -1 until one is known
	torn bool  // a torn line could not be undone: end it before the next write
}

func newLineWriter(w io.Writer) *lineWriter {
	lw := &lineWriter{w: w, good: -1}
	if rw, ok := w.(rewinder); ok {
		// The end of the file, where the first write lands for a file opened to append (the only kind this
		// package opens); a file of the caller's is checked again after each complete write.
		if end, err := rw.Seek(0, io.SeekEnd); err == nil {
			lw.good = end
		}
	}
	return lw
}

// write writes buf, which holds whole lines, in one call. On failure nothing of buf is left in the file when it
// can be truncated; the error says so when it cannot.
func (lw *lineWriter) write(buf []byte) error {
	if lw.torn {
		if _, err := lw.w.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("end the torn line: %w", err)
		}
		lw.torn = false
	}
	n, err := lw.w.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		if rw, ok := lw.w.(rewinder); ok {
			if end, serr := rw.Seek(0, io.SeekCurrent); serr == nil {
				lw.good = end
			}
		}
		return nil
	}
	if uerr := lw.undo(n); uerr != nil {
		lw.torn = true
		return errors.Join(err, fmt.Errorf("a partial line is left in the output (%w); the next write ends it", uerr))
	}
	return err
}

// undo truncates the file back to where the failed write began, removing the n bytes it left, and never below
// the end of the last complete write (a write that reports more than it wrote cannot eat earlier lines).
func (lw *lineWriter) undo(n int) error {
	rw, ok := lw.w.(rewinder)
	if !ok {
		if n == 0 {
			return nil
		}
		return errors.New("the output cannot be truncated")
	}
	end, err := rw.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	cut := end - int64(n)
	if lw.good >= 0 && cut < lw.good {
		cut = lw.good
	}
	if cut == end {
		return nil
	}
	if err := rw.Truncate(cut); err != nil {
		return err
	}
	_, err = rw.Seek(cut, io.SeekStart)
	return err
}
