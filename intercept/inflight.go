package intercept

import (
	"context"
	"sync"
)

// inFlight counts the traced calls not yet recorded. Unlike a
// sync.WaitGroup, waiting for it to drain may overlap calls starting, as it
// does during a graceful shutdown.
type inFlight struct {
	mu   sync.Mutex
	n    int64
	idle chan struct{} // closed when n drops to 0; nil while n == 0
}

func (f *inFlight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inFlight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.idle)
		f.idle = nil
	}
	f.mu.Unlock()
}

func (f *inFlight) count() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// wait returns once the count has been 0, or ctx's error.
func (f *inFlight) wait(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
