package group

import (
	"hash/fnv"
	"math"
)

// hash64 is FNV-1a of s, finished by a 64-bit mixer (SplitMix64's) so that every bit depends on every input bit.
func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return mix64(h.Sum64())
}

func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// rendezvous picks the owner of a tag among members by highest random weight: each (tag, member) pair gets a
// pseudo-random score and the member with the highest score wins. Every instance computes the same winner from
// the same member list; when a member joins it wins about 1/n of the tags from the others, when one leaves only
// its tags move. members holds precomputed hash64 values of the names (see hashMembers); it returns -1 when there
// is none.
type rendezvous struct {
	names  []string
	hashes []uint64
}

func newRendezvous(names []string) rendezvous {
	r := rendezvous{names: names, hashes: make([]uint64, len(names))}
	for i, n := range names {
		r.hashes[i] = hash64(n)
	}
	return r
}

// owner returns the winning member's name for tag, or "" when there is no member.
func (r rendezvous) owner(tag string) string {
	if len(r.names) == 0 {
		return ""
	}
	th := hash64(tag)
	best, bestScore := 0, uint64(0)
	for i, mh := range r.hashes {
		s := mix64(th ^ mh)
		if i == 0 || s > bestScore || s == bestScore && r.names[i] < r.names[best] {
			best, bestScore = i, s
		}
	}
	return r.names[best]
}

// demandParams are the poller's scheduling bounds, in seconds and media per page.
type demandParams struct {
	minIv, maxIv, pageSize float64
}

// pageFill mirrors the poller's: a tag is polled at least rate/(pageFill*PageSize) times a second.
const pageFill = 0.8

// pollRates returns each tag's poll rate (polls per second) under budget (polls per second) by the square-root
// rule with the poller's floor and ceiling: f_i = clamp(λ·sqrt(r_i), lo_i, hi), λ chosen so that the rates sum
// to the budget; when the floors alone exceed it every floor is scaled down by the same factor, and when the
// ceilings fit every tag gets its ceiling. rates are media per second.
func pollRates(rates []float64, budget float64, p demandParams) []float64 {
	n := len(rates)
	out := make([]float64, n)
	if n == 0 || budget <= 0 {
		return out
	}
	hi := 1 / p.minIv
	lo := make([]float64, n)
	sq := make([]float64, n)
	var sumLo, sumHi float64
	for i, r := range rates {
		r = max(r, 0)
		lo[i] = max(1/p.maxIv, min(r/(pageFill*p.pageSize), hi))
		sq[i] = math.Sqrt(r)
		sumLo += lo[i]
		sumHi += hi
	}
	switch {
	case sumLo >= budget:
		for i := range out {
			out[i] = lo[i] * budget / sumLo
		}
		return out
	case sumHi <= budget:
		for i := range out {
			out[i] = hi
		}
		return out
	}
	total := func(l float64) float64 {
		var f float64
		for i, s := range sq {
			f += min(hi, max(lo[i], l*s))
		}
		return f
	}
	up := 1.0
	for i := 0; i < 200 && total(up) < budget; i++ {
		up *= 4
	}
	down := up / 4
	for i := 0; i < 200 && total(down) > budget; i++ {
		down /= 4
	}
	for range 50 {
		mid := (up + down) / 2
		if total(mid) > budget {
			up = mid
		} else {
			down = mid
		}
	}
	for i, s := range sq {
		out[i] = min(hi, max(lo[i], down*s))
	}
	return out
}

// divide returns each holder's fraction of one token: its demand over the sum of the holders' demands, or an
// equal split when no holder has any demand (so that a tag taken over is polled at once). holders are member
// names; demand maps a name to its demand (polls per second).
func divide(holders []string, demand map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(holders))
	if len(holders) == 0 {
		return out
	}
	var sum float64
	for _, h := range holders {
		sum += demand[h]
	}
	for _, h := range holders {
		if sum > 0 {
			out[h] = demand[h] / sum
		} else {
			out[h] = 1 / float64(len(holders))
		}
	}
	return out
}
