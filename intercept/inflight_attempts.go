package intercept

import "github.com/tokentap/tokentap/rollout"

// InFlightAttempts lists the attempts of a rollout that have calls or
// rewards begun and not yet recorded. The trainer API asks it so that
// "latest" can name an attempt the store has nothing of yet.
func (p *Proxy) InFlightAttempts(rolloutID string) []rollout.AttemptInFlight {
	return p.attempts.inFlight(rolloutID)
}
