package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/secperm"
)

// CacheDirName is the folder of the state directory that holds cached
// discovery documents, one file per issuer, beside the token store's own
// folder (tokens/), so neither can take the other's names.
const CacheDirName = "discovery"

// DefaultCacheMaxAge is how long a cached discovery document is used
// without asking the server, unless its Cache-Control asked for less.
// Providers move endpoints rarely and announce it long before.
const DefaultCacheMaxAge = 24 * time.Hour

// cacheFileLimit bounds a cache file: a document and a few fields.
const cacheFileLimit = metadataLimit + 4<<10

// DiscoveryCache is Discover with a cache in a folder: a fresh document is
// used without a request, a stale one is fetched again, and while the
// server is unavailable (ErrUnavailable) a stale one stands in, so that a
// refresh still reaches the token endpoint when only the discovery
// endpoint is sick. A cached document is checked exactly like a fetched
// one. The cache never stops a lookup: an unreadable, corrupt or
// mismatching file is ignored and replaced, and a failed write is logged.
//
// Processes may share the folder: every write replaces a whole file
// atomically, and the last writer wins.
type DiscoveryCache struct {
	// Dir holds the files (see CacheDir); it is created 0700 on first write.
	Dir string
	// MaxAge caps how long a document stays fresh; 0 means
	// DefaultCacheMaxAge. A shorter Cache-Control max-age (or no-cache,
	// no-store: then it is fetched every time, and kept only for outages)
	// wins.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the line said when a stale document stands in, and
	// cache problems; nil discards them.
	Logger *slog.Logger
}

// CacheDir is the discovery cache folder of the state directory stateDir.
func CacheDir(stateDir string) string { return filepath.Join(stateDir, CacheDirName) }

// cacheEntry is one file: the document as the server sent it, so that
// reading it applies today's checks, and when it was fetched.
type cacheEntry struct {
	Issuer     string          `json:"issuer"`
	Source     string          `json:"source"`
	Fetched    time.Time       `json:"fetched"`
	FreshUntil time.Time       `json:"fresh_until"`
	Document   json.RawMessage `json:"document"`
}

// Discover returns the metadata of issuer from the cache while it is fresh,
// else from the server (see the type's doc). hc and ctx are as for the
// package's Discover.
func (c *DiscoveryCache) Discover(ctx context.Context, hc *http.Client, issuer string) (*Metadata, error) {
	candidates, err := metadataURLs(issuer)
	if err != nil {
		return nil, err
	}
	now := c.now()
	path := c.path(issuer)
	cached, entry := c.read(path, issuer, candidates)
	if cached != nil && !now.Before(entry.Fetched) && now.Before(entry.FreshUntil) && now.Sub(entry.Fetched) < c.maxAge() {
		return cached, nil
	}
	md, doc, err := discover(ctx, hc, issuer)
	if err != nil {
		if cached != nil && errors.Is(err, ErrUnavailable) {
			c.log().Warn("the provider's discovery document could not be fetched; using the copy cached at "+
				entry.Fetched.Local().Format(time.DateTime), "issuer", issuer, "error", err.Error())
			return cached, nil
		}
		return nil, err
	}
	c.write(path, issuer, doc, now)
	return md, nil
}

func (c *DiscoveryCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *DiscoveryCache) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return DefaultCacheMaxAge
}

func (c *DiscoveryCache) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// path names issuer's file by a digest: an issuer URL holds characters no
// file name may, and the issuer inside the file is what counts.
func (c *DiscoveryCache) path(issuer string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(issuer, "/")))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".json")
}

// read returns the cached metadata of issuer and its entry, or nil when
// there is none that passes the checks.
func (c *DiscoveryCache) read(path, issuer string, candidates []string) (*Metadata, *cacheEntry) {
	b, _, err := secperm.ReadFile(path, cacheFileLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	ignore := func(why string) (*Metadata, *cacheEntry) {
		c.log().Info("ignoring the cached discovery document; it is fetched again", "file", path, "reason", why)
		return nil, nil
	}
	if err != nil {
		return ignore(err.Error())
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil || e.Fetched.IsZero() {
		return ignore("not a cache file")
	}
	if strings.TrimSuffix(e.Issuer, "/") != strings.TrimSuffix(issuer, "/") || !slices.Contains(candidates, e.Source) {
		return ignore("it is for another issuer")
	}
	md, err := parseMetadata(issuer, e.Source, e.Document)
	if err != nil {
		return ignore(err.Error())
	}
	return md, &e
}

// write stores doc, fetched at now, for issuer. Failing to is no reason to
// fail the lookup: the next one fetches again.
func (c *DiscoveryCache) write(path, issuer string, doc *document, now time.Time) {
	fresh := c.maxAge()
	if doc.known {
		fresh = min(fresh, doc.freshFor)
	}
	b, err := json.MarshalIndent(cacheEntry{
		Issuer: issuer, Source: doc.source, Fetched: now.UTC(), FreshUntil: now.Add(fresh).UTC(),
		Document: json.RawMessage(doc.body),
	}, "", "  ")
	if err == nil {
		b = append(b, '\n')
		if err = secperm.EnsureDir(c.Dir); err == nil {
			err = atomicfile.WriteFile(path, b, 0o600)
		}
	}
	if err != nil {
		c.log().Warn("the discovery document could not be cached; it is fetched again next time", "issuer", issuer, "error", err.Error())
	}
}
