package store

import (
	"fmt"
	"testing"
)

// The filter never forgets a rollout it was told of, and rarely claims one
// it was not told of.
func TestKnownRollouts(t *testing.T) {
	var k knownRollouts
	const n = 200_000
	for i := range n {
		k.add(fmt.Sprintf("rollout-%d", i))
	}
	for i := range n {
		if !k.mayHold(fmt.Sprintf("rollout-%d", i)) {
			t.Fatalf("rollout-%d was added and is not known", i)
		}
	}
	falsePositives := 0
	for i := range n {
		if k.mayHold(fmt.Sprintf("other-%d", i)) {
			falsePositives++
		}
	}
	// 200,000 rollouts in 8 Mbit with 6 hashes: about 0.01%.
	if rate := float64(falsePositives) / n; rate > 0.002 {
		t.Errorf("%.4f%% of unknown rollouts claimed known", 100*rate)
	}
}
