package cli

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logWriter batches log lines: one write system call per flush instead of per
// line, which on the hit path costs more than the Redis GET. It flushes every
// interval and on Close, so at most interval's worth of lines is lost on a
// crash.
type logWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogWriter(w io.Writer, interval time.Duration) *logWriter {
	lw := &logWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				lw.flush()
			case <-lw.stop:
				lw.flush()
				return
			}
		}
	}()
	return lw
}

func (lw *logWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.buf.Write(p)
}

func (lw *logWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.buf.Flush()
}

// Close flushes what is buffered and stops the flusher.
func (lw *logWriter) Close() error {
	close(lw.stop)
	<-lw.done
	return nil
}
