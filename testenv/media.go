package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// mediaIDBase is the numeric part of the first media id; later ids grow from there.
const mediaIDBase = 1300000000000000000

// wireUser is a user as it appears in media objects.
type wireUser struct {
	Username       string `json:"username"`
	ProfilePicture string `json:"profile_picture"`
	ID             string `json:"id"`
	FullName       string `json:"full_name"`
}

type wireImage struct {
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

type wireImages struct {
	LowResolution      wireImage `json:"low_resolution"`
	Thumbnail          wireImage `json:"thumbnail"`
	StandardResolution wireImage `json:"standard_resolution"`
}

type wireVideos struct {
	LowBandwidth       wireImage `json:"low_bandwidth"`
	LowResolution      wireImage `json:"low_resolution"`
	StandardResolution wireImage `json:"standard_resolution"`
}

type wireComment struct {
	CreatedTime string   `json:"created_time"`
	Text        string   `json:"text"`
	From        wireUser `json:"from"`
	ID          string   `json:"id"`
}

type wireCount[T any] struct {
	Count int `json:"count"`
	Data  []T `json:"data"`
}

type wireLocation struct {
	Latitude  float64 `json:"latitude"`
	Name      *string `json:"name"`
	Longitude float64 `json:"longitude"`
	ID        int64   `json:"id"`
}

type wirePosition struct {
	Y float64 `json:"y"`
	X float64 `json:"x"`
}

type wireUserInPhoto struct {
	Position wirePosition `json:"position"`
	User     wireUser     `json:"user"`
}

type wireCarouselItem struct {
	Images       *wireImages       `json:"images,omitempty"`
	Videos       *wireVideos       `json:"videos,omitempty"`
	Type         string            `json:"type"`
	UsersInPhoto []wireUserInPhoto `json:"users_in_photo"`
}

// wireMedia is a media object with the keys of the recorded 2015-2017 responses, in their order.
type wireMedia struct {
	Attribution   *struct{}              `json:"attribution"`
	Tags          []string               `json:"tags"`
	Type          string                 `json:"type"`
	Location      *wireLocation          `json:"location"`
	Comments      wireCount[wireComment] `json:"comments"`
	Filter        string                 `json:"filter"`
	CreatedTime   string                 `json:"created_time"`
	Link          string                 `json:"link"`
	Likes         wireCount[wireUser]    `json:"likes"`
	Images        wireImages             `json:"images"`
	Videos        *wireVideos            `json:"videos,omitempty"`
	CarouselMedia []wireCarouselItem     `json:"carousel_media,omitempty"`
	UsersInPhoto  []wireUserInPhoto      `json:"users_in_photo"`
	Caption       *wireComment           `json:"caption"`
	UserHasLiked  bool                   `json:"user_has_liked"`
	ID            string                 `json:"id"`
	User          wireUser               `json:"user"`
}

// media is one media in the simulator: its wire form plus its JSON as served in pages, encoded when first served
// (most media of a large initial feed never are).
type media struct {
	tag     string
	seq     uint64 // position in its tag's feed (monotonic, never reused)
	cursor  string // cursor in its tag's feed
	late    bool
	visible time.Time
	created time.Time
	wire    wireMedia              // guarded by Server.mediaMu once published
	likers  map[int]bool           // credential indexes that liked it; guarded by Server.mediaMu
	enc     atomic.Pointer[[]byte] // encoded wire form, nil until first served and after likes changed
}

// json returns the JSON of m, encoding it on first use. mu is the Server's mediaMu, which guards m.wire once m is
// published; the caller must not hold it.
func (m *media) json(mu *sync.RWMutex) []byte {
	if b := m.enc.Load(); b != nil {
		return *b
	}
	mu.RLock()
	defer mu.RUnlock()
	if b := m.enc.Load(); b != nil {
		return *b
	}
	b := appendMedia(nil, &m.wire)
	m.enc.CompareAndSwap(nil, &b) // another reader may have encoded it meanwhile: the same bytes
	return *m.enc.Load()
}

// changed drops m's encoding after m.wire changed; the caller holds mediaMu for writing.
func (m *media) changed() { m.enc.Store(nil) }

// encode returns the JSON of w without HTML escaping (captions keep their markup verbatim).
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only unsupported values fail; the wire types have none.
		return []byte("null")
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

var filters = []string{
	"Normal", "Clarendon", "Juno", "Lark", "Ludwig", "Gingham", "Valencia", "X-Pro II", "Lo-fi", "Amaro",
	"Mayfair", "Rise", "Hudson", "Sierra", "Willow", "Hefe", "Nashville", "1977", "Kelvin", "Inkwell",
}

// captionPieces are fragments a caption is built from: Unicode of many scripts, emoji (with ZWJ sequences and
// skin tones), combining marks, RTL text, quotes, backslashes, markup, line and paragraph separators.
var captionPieces = []string{
	"komutanım candır", "Late post 😁", "🍂🍁-->QWAAQIE<--🍁🍂", "— taylorswift 🍂", "Как клевооооо +)) 😊😄😃",
	"قهران😂😂😂😂", "שלום עולם", "東京タワー 🗼", "日落 · 夕阳", "서울의 밤 ✨", "ยินดีต้อนรับ", "नमस्ते दुनिया",
	"👩‍👩‍👧‍👦 family", "👍🏽👍🏿", "🏳️‍🌈", "e\u0301te\u0301 cafe\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
	"\"quoted\" and 'single'", "back\\slash \\n not a newline", "<b>bold</b> <script>alert(1)</script>",
	"a & b < c > d", "tab\there", "line one\nline two", "para\n\nbreak", "crlf\r\nline", "\u2028ls\u2029ps",
	"ﬁt (ligature)", "zero\u200bwidth", "\u00a0nbsp\u00a0", "math 𝔸𝔹ℂ", "{\"json\":\"inside\"}", "@friend_01",
	"%s %d %%", "NULL", "", "😀", "🇹🇷🇯🇵🇧🇷", "ｆｕｌｌｗｉｄｔｈ", "¿Qué tal?", "Ünïcödé",
}

var wordPool = []string{
	"sunset", "coffee", "tbt", "nofilter", "love", "instagood", "photooftheday", "fashion", "beautiful", "happy",
	"cute", "travel", "summer", "food", "art", "nature", "selfie", "friends", "fitness", "music", "snow", "ts",
	"bjk", "1989", "red", "puppy",
}

// user returns the deterministic user number i.
func makeUser(seed int64, i int) wireUser {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(i)*0x9E3779B97F4A7C15+1))
	id := 1000000 + r.Int64N(3_600_000_000)
	var name string
	switch i % 7 {
	case 0:
		name = ""
	case 1:
		name = "⠀⠀⠀Team " + wordPool[r.IntN(len(wordPool))] + " 🐳"
	case 2:
		name = "José Ñúñez"
	default:
		name = strings.ToUpper(wordPool[r.IntN(len(wordPool))][:1]) + wordPool[r.IntN(len(wordPool))][1:] +
			" " + wordPool[r.IntN(len(wordPool))]
	}
	return wireUser{
		Username:       fmt.Sprintf("%s.%s%d", wordPool[r.IntN(len(wordPool))], wordPool[r.IntN(len(wordPool))], i),
		ProfilePicture: fmt.Sprintf("https://scontent.cdninstagram.com/t51.2885-19/s150x150/%d_%d_a.jpg", id, r.Int64N(1e15)),
		ID:             strconv.FormatInt(id, 10),
		FullName:       name,
	}
}

const userPoolSize = 512

// userPools caches the user pool of each seed: a test process starts many simulators, most with the seeds of a
// few others, and making a pool is most of what an empty simulator costs. A pool is never changed once made.
var userPools struct {
	sync.Mutex
	m map[int64][]wireUser
}

// userPool returns the userPoolSize deterministic users of seed, shared by every simulator of that seed.
func userPool(seed int64) []wireUser {
	userPools.Lock()
	defer userPools.Unlock()
	if users, ok := userPools.m[seed]; ok {
		return users
	}
	users := make([]wireUser, userPoolSize)
	for i := range users {
		users[i] = makeUser(seed, i)
	}
	if userPools.m == nil || len(userPools.m) >= 64 { // a bound for processes that try many seeds
		userPools.m = make(map[int64][]wireUser)
	}
	userPools.m[seed] = users
	return users
}

// generator makes deterministic media for one tag.
type generator struct {
	tag   string
	index int // tag index, embedded in media ids so that ids are unique across tags
	rng   *rand.Rand
	users []wireUser
	n     uint64 // media made so far
}

func newGenerator(seed int64, tag string, index int, users []wireUser) *generator {
	h := fnv64(tag)
	return &generator{
		tag:   tag,
		index: index,
		rng:   rand.New(rand.NewPCG(uint64(seed)^h, h*31+7)),
		users: users,
	}
}

func (g *generator) user() wireUser { return g.users[g.rng.IntN(len(g.users))] }

func (g *generator) images(key string) wireImages {
	base := "https://scontent.cdninstagram.com/t51.2885-15/"
	return wireImages{
		LowResolution:      wireImage{URL: base + "s320x320/e35/" + key + "_n.jpg", Width: 320, Height: 320},
		Thumbnail:          wireImage{URL: base + "s150x150/e35/" + key + "_n.jpg", Width: 150, Height: 150},
		StandardResolution: wireImage{URL: base + "s640x640/sh0.08/e35/" + key + "_n.jpg", Width: 640, Height: 640},
	}
}

func (g *generator) videos(key string) *wireVideos {
	base := "https://scontent.cdninstagram.com/t50.2886-16/"
	return &wireVideos{
		LowBandwidth:       wireImage{URL: base + key + "_s.mp4", Width: 480, Height: 480},
		LowResolution:      wireImage{URL: base + key + "_s.mp4", Width: 480, Height: 480},
		StandardResolution: wireImage{URL: base + key + "_n.mp4", Width: 640, Height: 640},
	}
}

func (g *generator) usersInPhoto() []wireUserInPhoto {
	n := 0
	if g.rng.IntN(4) == 0 {
		n = 1 + g.rng.IntN(3)
	}
	out := make([]wireUserInPhoto, n)
	for i := range out {
		out[i] = wireUserInPhoto{
			Position: wirePosition{Y: g.rng.Float64(), X: g.rng.Float64()},
			User:     g.user(),
		}
	}
	return out
}

func (g *generator) caption(created string) string {
	var b strings.Builder
	n := 1 + g.rng.IntN(4)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(captionPieces[g.rng.IntN(len(captionPieces))])
	}
	return b.String()
}

func (g *generator) key() string {
	return fmt.Sprintf("%d_%d_%d", 10000000+g.rng.Int64N(9e7), g.rng.Int64N(1e15), g.rng.Int64N(1e10))
}

func (g *generator) shortcode() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 11)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// next makes the next media of the tag, created at created.
func (g *generator) next(created time.Time) wireMedia {
	seq := g.n
	g.n++
	owner := g.user()
	ct := strconv.FormatInt(created.Unix(), 10)
	num := uint64(mediaIDBase) + seq*maxTags + uint64(g.index)
	m := wireMedia{
		Tags:         []string{g.tag},
		Type:         "image",
		Filter:       filters[g.rng.IntN(len(filters))],
		CreatedTime:  ct,
		Link:         "https://www.instagram.com/p/" + g.shortcode() + "/",
		UsersInPhoto: g.usersInPhoto(),
		ID:           strconv.FormatUint(num, 10) + "_" + owner.ID,
		User:         owner,
	}
	for i, n := 0, g.rng.IntN(4); i < n; i++ {
		m.Tags = append(m.Tags, wordPool[g.rng.IntN(len(wordPool))])
	}
	g.rng.Shuffle(len(m.Tags), func(i, j int) { m.Tags[i], m.Tags[j] = m.Tags[j], m.Tags[i] })
	key := g.key()
	m.Images = g.images(key)
	switch r := g.rng.IntN(10); {
	case r < 7:
	case r < 9:
		m.Type = "video"
		m.Videos = g.videos(key)
	default:
		m.Type = "carousel"
		n := 2 + g.rng.IntN(4)
		for i := 0; i < n; i++ {
			k := g.key()
			item := wireCarouselItem{Type: "image", UsersInPhoto: g.usersInPhoto()}
			if g.rng.IntN(3) == 0 {
				item.Type = "video"
				item.Videos = g.videos(k)
			} else {
				im := g.images(k)
				item.Images = &im
			}
			m.CarouselMedia = append(m.CarouselMedia, item)
		}
	}
	if g.rng.IntN(5) == 0 {
		loc := &wireLocation{
			Latitude:  g.rng.Float64()*170 - 85,
			Longitude: g.rng.Float64()*360 - 180,
			ID:        1 + g.rng.Int64N(1_000_000_000),
		}
		if g.rng.IntN(10) != 0 {
			name := captionPieces[g.rng.IntN(len(captionPieces))]
			loc.Name = &name
		}
		m.Location = loc
	}
	m.Likes = wireCount[wireUser]{Count: int(g.rng.ExpFloat64() * 20), Data: []wireUser{}}
	for i := 0; i < m.Likes.Count && i < 4; i++ {
		m.Likes.Data = append(m.Likes.Data, g.user())
	}
	m.Comments = wireCount[wireComment]{Count: int(g.rng.ExpFloat64() * 2), Data: []wireComment{}}
	for i := 0; i < m.Comments.Count && i < 3; i++ {
		m.Comments.Data = append(m.Comments.Data, wireComment{
			CreatedTime: strconv.FormatInt(created.Unix()+int64(1+g.rng.IntN(600)), 10),
			Text:        captionPieces[g.rng.IntN(len(captionPieces))],
			From:        g.user(),
			ID:          strconv.FormatUint(num+uint64(1+i)*977, 10),
		})
	}
	if g.rng.IntN(7) != 0 {
		m.Caption = &wireComment{
			CreatedTime: ct,
			Text:        "#" + g.tag + " " + g.caption(ct),
			From:        owner,
			ID:          strconv.FormatUint(num+1_000_003, 10),
		}
	}
	return m
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
