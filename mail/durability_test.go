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

// TestParityMeetsTheDurabilityModel checks the constants against spec
// 9.7: with 10% of nodes leaving per republish round over MaxLifetime,
// and with 30% leaving at once, every group a mail can have is lost with
// probability below 1e-11, so a mail of MaxGroups groups stays under
// 1e-9.
func TestParityMeetsTheDurabilityModel(t *testing.T) {
	rounds := float64(block.MaxLifetime / block.ShardRepublishInterval)
	r := float64(block.ShardReplicas)
	churn := 1 - math.Pow(1-math.Pow(0.10, r), rounds)
	atOnce := math.Pow(0.30, r)
	worst := 0.0
	for k := 2; k <= GroupDataShards; k++ {
		m := ParityShards(k)
		for _, q := range []float64{churn, atOnce} {
			p := binomialTail(k+m, q, m)
			worst = max(worst, p)
			if p >= 1e-11 {
				t.Errorf("a group of %d+%d shards is lost with probability %.2g (q = %.3g)", k, m, p, q)
			}
		}
	}
	full := binomialTail(fullGroup.Shards(), churn, fullGroup.Parity)
	if mailLoss := worst + MaxGroups*full; mailLoss >= 1e-9 {
		t.Errorf("the largest mail is lost with probability %.2g", mailLoss)
	}
	t.Logf("q = %.3g over %v rounds; worst group %.2g; full group %.2g", churn, rounds, worst, full)
}
