package store_test

import (
	"context"
	"go.opentelemetry.io/otel/trace"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/store"
)

// TestHandOverReads: an ask for reads counts the API processes of its own
// database (pub/sub spans a server's databases: another installation's are
// not asked), and a process that does not answer is told apart, after the
// wait, from one that does.
func TestHandOverReads(t *testing.T) {
	ctx := context.Background()
	ours, theirs := store.New(redistest.Client(t)), store.New(redistest.Client(t))
	if asked, answered, err := ours.Cache.HandOverReads(ctx, time.Second); err != nil || asked != 0 || answered != 0 {
		t.Fatalf("with no API process: %d asked, %d answered, %v", asked, answered, err)
	}
	listen := func(st store.Store, answer bool) {
		sub, err := st.Cache.Subscribe(ctx, store.Listener{Filled: func(string, trace.SpanContext) {}, HandOver: func(reply string) {
			if answer {
				st.Cache.AnswerHandOver(ctx, reply)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		go sub.Run(runCtx)
		t.Cleanup(func() { cancel(); sub.Close() })
	}
	listen(ours, true)
	listen(theirs, true) // another database: not asked
	if asked, answered, err := ours.Cache.HandOverReads(ctx, 5*time.Second); err != nil || asked != 1 || answered != 1 {
		t.Fatalf("one API process of ours: %d asked, %d answered, %v; want 1, 1", asked, answered, err)
	}
	listen(ours, false) // hung: it never answers
	start := time.Now()
	asked, answered, err := ours.Cache.HandOverReads(ctx, time.Second)
	if err != nil || asked != 2 || answered != 1 {
		t.Errorf("with one that never answers: %d asked, %d answered, %v; want 2, 1", asked, answered, err)
	}
	if waited := time.Since(start); waited < time.Second || waited > 5*time.Second {
		t.Errorf("waited %s for the one that never answers, want the 1 s asked for (BLPOP counts whole seconds)", waited)
	}
}
