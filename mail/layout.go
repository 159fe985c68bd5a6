package mail

import "fmt"

// GroupLayout is how one group is coded: Data shards of ShardSize bytes
// carry its ciphertext, Parity shards of the same size protect them
// (spec 9.3, 9.4).
type GroupLayout struct {
	ShardSize int // S
	Data      int // k
	Parity    int // m
}

// Shards is k + m.
func (g GroupLayout) Shards() int { return g.Data + g.Parity }

// plain is how many plaintext bytes (compressed envelope and padding) the
// group's ciphertext holds: k·S less the tag.
func (g GroupLayout) plain() int { return g.Data*g.ShardSize - tagSize }

// fullGroup is the layout of every group but the last.
var fullGroup = GroupLayout{ShardSize: MaxShardSize, Data: GroupDataShards, Parity: ParityShards(GroupDataShards)}

// lastGroup is the layout of the last group for its r compressed bytes
// (spec 9.3 step 2): the smallest shard size that takes them in at most
// LastGroupMaxData shards (or MaxShardSize, in up to GroupDataShards),
// and at least two data shards, since one would make every parity shard
// a copy of it.
func lastGroup(r int) GroupLayout {
	n := r + tagSize
	s := MaxShardSize
	for _, x := range ShardSizes {
		if n <= LastGroupMaxData*x {
			s = x
			break
		}
	}
	k := max(2, (n+s-1)/s)
	return GroupLayout{ShardSize: s, Data: k, Parity: ParityShards(k)}
}

// Layout is how a body of CompressedLen bytes is cut into groups and
// coded: Groups-1 full groups, then Last.
type Layout struct {
	CompressedLen int64
	Groups        int
	Last          GroupLayout
}

// LayoutFor is spec 9.3 step 2 for zlen compressed bytes.
func LayoutFor(zlen int64) (Layout, error) {
	if zlen < 1 || zlen > MaxCompressedLen {
		return Layout{}, fmt.Errorf("%w: %d compressed bytes, allowed 1 to %d", ErrCompressedLen, zlen, int64(MaxCompressedLen))
	}
	groups := int((zlen + fullGroupPlain - 1) / fullGroupPlain)
	r := int(zlen - int64(groups-1)*fullGroupPlain)
	return Layout{CompressedLen: zlen, Groups: groups, Last: lastGroup(r)}, nil
}

// Group returns the layout of group g.
func (l Layout) Group(g int) GroupLayout {
	if g == l.Groups-1 {
		return l.Last
	}
	return fullGroup
}

// Shards is the number of shards of every group together: the shard IDs
// a manifest lists.
func (l Layout) Shards() int { return (l.Groups-1)*fullGroup.Shards() + l.Last.Shards() }

// FirstShard is the position of group g's first shard among all shards.
func (l Layout) FirstShard(g int) int { return g * fullGroup.Shards() }

// zBytes is how many bytes of Z group g carries; the rest of its
// plaintext is padding.
func (l Layout) zBytes(g int) int {
	if g == l.Groups-1 {
		return int(l.CompressedLen - int64(g)*fullGroupPlain)
	}
	return fullGroupPlain
}

// DataBytes is the payload bytes of every data shard: what a recipient
// fetches at least.
func (l Layout) DataBytes() int64 {
	return int64(l.Groups-1)*int64(fullGroup.Data*fullGroup.ShardSize) + int64(l.Last.Data*l.Last.ShardSize)
}
