package api

import (
	"context"
	"errors"
	"time"

	"github.com/tokentap/tokentap/store"
)

// driftPosition is the completion log position the drift counter has
// diagnosed up to.
const driftPosition = "trajectory-drift"

// CountDrift follows the store's completion log and diagnoses the
// trajectories of every attempt that completes: it records the drifted
// calls by cause in the attempt's summary (the rollouts list shows them)
// and reports them to Config.OnDrift (tokentap_trajectory_drift_total). It
// runs in the background, never on an agent's path, one attempt at a time,
// until ctx ends. Its position is kept in the store, so after a restart it
// goes on where it stopped.
func (a *API) CountDrift(ctx context.Context) {
	pos, err := a.cfg.Store.Position(ctx, driftPosition)
	if err != nil {
		a.cfg.Logger.Error().Err(err).Msg("drift counter: read position")
		return
	}
	for ctx.Err() == nil {
		entries, _, err := a.cfg.Store.Completions(ctx, pos, 64)
		if err != nil {
			if !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
				a.cfg.Logger.Error().Err(err).Msg("drift counter: read completions")
				sleep(ctx, 5*time.Second)
				continue
			}
			return
		}
		if len(entries) == 0 {
			if err := a.cfg.Store.WaitCompletion(ctx, pos); err != nil {
				return
			}
			continue
		}
		for _, e := range entries {
			v, err := a.completedView(ctx, e)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// A record that cannot be read back is counted nowhere,
				// and must not stop the count of every later attempt.
				a.cfg.Logger.Error().Err(err).Str("rollout_id", e.RolloutID).Str("attempt_id", e.AttemptID).Msg("drift counter: read attempt")
			} else {
				counts := map[string]int{}
				for _, d := range v.Drift {
					counts[d.Cause]++
				}
				if err := a.cfg.Store.SetDrift(ctx, e.RolloutID, e.AttemptID, counts); err != nil {
					if ctx.Err() == nil {
						a.cfg.Logger.Error().Err(err).Msg("drift counter: record counts")
					}
					return
				}
				if a.cfg.OnDrift != nil {
					for cause, n := range counts {
						a.cfg.OnDrift(cause, n)
					}
				}
			}
			pos = e.Position
			if err := a.cfg.Store.SetPosition(ctx, driftPosition, pos); err != nil {
				if ctx.Err() == nil {
					a.cfg.Logger.Error().Err(err).Msg("drift counter: save position")
				}
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
