package rollout

import "time"

// AttemptInFlight is an attempt with calls or rewards begun and not yet
// recorded: the proxy knows of it before the store does. It is how the
// trainer API's "latest" sees an attempt whose first call is still running.
type AttemptInFlight struct {
	RolloutID string
	AttemptID string
	// Count is the number of its calls and rewards in flight.
	Count int
	// Since is when the attempt last went from nothing in flight to
	// something in flight. For an attempt with nothing recorded yet, that
	// is when its first call or reward began.
	Since time.Time
}
