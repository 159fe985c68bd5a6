package mail

import (
	"math"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// binomialTail is P[X > m] for X ~ Binomial(n, q).
func binomialTail(n int, q float64, m int) float64 {
	var p float64
	for j := m + 1; j <= n; j++ {
		lc, _ := math.Lgamma(float64(n + 1))
		a, _ := math.Lgamma(float64(j + 1))
		b, _ := math.Lgamma(float64(n - j + 1))
		p += math.Exp(lc-a-b+float64(j)*math.Log(q)) * math.Pow(1-q, float64(n-j))
	}
	return p
}

// TestParityMeetsTheDurabilityModel derives spec 9.4's table from the
// model of 9.7: with 10% of nodes leaving per republish round over
// MaxLifetime, and with 30% leaving at once, a group of k data shards is
// lost with probability below 1e-10 (1e-11 for a full group) with
// ParityShards(k) parity shards, and not with one fewer; so a mail of
// MaxGroups groups stays under 1e-9.
func TestParityMeetsTheDurabilityModel(t *testing.T) {
	rounds := float64(block.MaxLifetime / block.ShardRepublishInterval)
	r := float64(block.ShardReplicas)
	churn := 1 - math.Pow(1-math.Pow(0.10, r), rounds)
	atOnce := math.Pow(0.30, r)
	lost := func(k, m int) float64 {
		return max(binomialTail(k+m, churn, m), binomialTail(k+m, atOnce, m))
	}
	worst := 0.0
	for k := 2; k <= GroupDataShards; k++ {
		bound := 1e-10
		if k == GroupDataShards {
			bound = 1e-11
		}
		m := ParityShards(k)
		if p := lost(k, m); p >= bound {
			t.Errorf("a group of %d+%d shards is lost with probability %.2g, want below %.0e", k, m, p, bound)
		}
		if p := lost(k, m-1); p < bound {
			t.Errorf("a group of %d+%d shards would do (lost with probability %.2g): the table wastes a parity shard", k, m-1, p)
		}
		worst = max(worst, lost(k, m))
	}
	full := lost(fullGroup.Data, fullGroup.Parity)
	if fullGroup.Parity != fullGroupParity {
		t.Errorf("a full group has %d parity shards, the constant says %d", fullGroup.Parity, fullGroupParity)
	}
	if mailLoss := worst + (MaxGroups-1)*full; mailLoss >= 1e-9 {
		t.Errorf("the largest mail is lost with probability %.2g", mailLoss)
	}
	t.Logf("q = %.3g over %v rounds; worst group %.2g; full group %.2g", churn, rounds, worst, full)
}
