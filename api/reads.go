package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache"
)

// readsFlush is how often a process hands the reads it saw to Redis; an
// invalidation asks for them at once (handOver).
const readsFlush = 10 * time.Second

// reads remembers when each report was last read in this process, to hand
// to Redis in batches: no Redis write per hit. A hit from L1 costs an atomic
// load, and at most once a second per report a lookup in a sync.Map; other
// reads, which make a Redis round trip anyway, the lookup. It is safe for
// concurrent use; a nil *reads records nothing.
type reads struct {
	m sync.Map // dashcache.ReportKey -> *readStamp
}

type readStamp struct {
	last    atomic.Int64 // Unix ms of the last read recorded
	flushed int64        // last, when it was last taken (take's alone)
}

// readResolution is how finely reads are timed: a report read again within
// it is not recorded again.
const readResolution = int64(time.Second / time.Millisecond)

// record records a read of k at now: of its months for a partitioned
// report, whose months are what is filled and refreshed (rep's, or parts
// for a read that L1 did not serve); rep is the report served from L1, if
// it was.
func (r *reads) record(k dashcache.ReportKey, parts []dashcache.ReportKey, rep *report, now time.Time) {
	if r == nil {
		return
	}
	ms := now.UnixMilli()
	if rep != nil {
		if ms-rep.lastRead.Load() < readResolution {
			return
		}
		rep.lastRead.Store(ms)
	}
	switch {
	case rep != nil && rep.months != nil:
		for _, m := range rep.months {
			r.stamp(m.key, ms)
		}
	case parts != nil:
		for _, p := range parts {
			r.stamp(p, ms)
		}
	default:
		r.stamp(k, ms)
	}
}

// stamp records a read of k at ms.
func (r *reads) stamp(k dashcache.ReportKey, ms int64) {
	v, ok := r.m.Load(k)
	if !ok {
		v, _ = r.m.LoadOrStore(k, new(readStamp))
	}
	st := v.(*readStamp)
	if last := st.last.Load(); ms-last >= readResolution {
		st.last.Store(ms)
	}
}

// take returns the reads recorded since the last take, and forgets the
// reports not read since then. Calls of take must not overlap.
func (r *reads) take() map[dashcache.ReportKey]time.Time {
	out := map[dashcache.ReportKey]time.Time{}
	r.m.Range(func(key, v any) bool {
		st := v.(*readStamp)
		last := st.last.Load()
		if last == st.flushed {
			// A read racing this may store into the stamp deleted: it is
			// lost, and the report's next read is recorded.
			r.m.CompareAndDelete(key, v)
			return true
		}
		st.flushed = last
		out[key.(dashcache.ReportKey)] = time.UnixMilli(last)
		return true
	})
	return out
}

// flushReads hands the reads recorded to Redis. Those it fails to hand
// over are lost (logged): the reports' next reads are recorded again.
func (s *Server) flushReads(ctx context.Context) error {
	if s.reads == nil {
		return nil
	}
	s.flushing.Lock()
	defer s.flushing.Unlock()
	err := s.cfg.Reads.RecordReads(ctx, s.reads.take())
	if err != nil {
		s.cfg.Log.Warn().Err(err).Msg("recording reads")
	}
	return err
}

// flushReadsEvery hands the reads recorded to Redis every period, and once
// more at Shutdown.
func (s *Server) flushReadsEvery(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.closing:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.flushReads(ctx) // logged
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.flushReads(ctx) // logged
		cancel()
	}
}

// handOver hands the reads seen to Redis, asked by an invalidation (anywhere
// in the fleet), and answers it once they are there: if they could not be
// handed over, it does not answer, and the invalidation counts it as
// unanswered. It does not hold up the subscription.
func (s *Server) handOver(reply string) {
	s.goBackground(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s.flushReads(ctx) != nil {
			return
		}
		if err := s.cfg.Cache.AnswerHandOver(ctx, reply); err != nil {
			s.cfg.Log.Warn().Err(err).Msg("answering a hand-over of reads") // the invalidation says one did not answer
		}
	})
}
