// Package source feeds mesh config into the control plane: it reads config
// from where it lives and hands over a fresh model.Result on every change.
// Deciding what to serve (the last good config) is the consumer's job.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/glassmesh/glassmesh/control/model"
)

// DefaultDebounce is how long the config must be quiet before a reload when
// FileConfig.Debounce is zero: long enough to coalesce an editor's save or a
// `git checkout`, short enough to feel immediate.
const DefaultDebounce = 100 * time.Millisecond

// FileConfig configures a File source.
type FileConfig struct {
	// Path is a mesh config directory or file. A path that does not exist
	// is an empty mesh until it appears.
	Path string
	// Debounce is how long no change may arrive before the config is read
	// again; DefaultDebounce when zero. A burst that never pauses is read at
	// most every ten Debounce periods.
	Debounce time.Duration
}

// File is a mesh config source backed by a directory (or one file) on disk,
// watched for changes. It reads what LoadConfig reads: the glassmesh kinds,
// and Kubernetes manifests of core Services, HTTPRoutes and TrafficSplits
// (a GitOps directory as kubectl applies it); other kinds are skipped.
type File struct {
	cfg     FileConfig
	logger  *slog.Logger
	skipped string // the kinds skipped last time, said when they change
	// parsed keeps the documents read last: a reload parses only what
	// changed, and unchanged objects stay the same objects.
	parsed model.ParseCache
}

// Sink takes each new load of a source: it decides what serves, and
// returns the objects whose newest version does not (for the source to
// report where it can, as Kubernetes status conditions).
type Sink func(model.Result) []ObjectStatus

// LoadConfig reads the mesh config at path (a directory or one file): the
// glassmesh kinds, and Kubernetes manifests the way the Kubernetes source
// reads the same objects applied (core Services, Gateway API HTTPRoutes
// and SMI TrafficSplits imported as TrafficRoutes, List documents); the
// objects of other kinds are skipped and counted.
func LoadConfig(path string) (model.Result, model.Skipped) {
	return model.LoadManifests(path, ImportManifests)
}

// NewFile returns a File source; nothing happens until Run.
func NewFile(cfg FileConfig, logger *slog.Logger) *File {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	return &File{cfg: cfg, logger: logger}
}

// Run loads the config and calls out with the result, then watches the
// path and calls out again after each change that alters what is read. out
// is called from Run's goroutine, one call at a time; while it runs, changes
// queue up and are read together afterwards. Run returns nil when ctx is
// done, and an error only when the path cannot be watched at all.
func (f *File) Run(ctx context.Context, out Sink) error {
	abs, err := filepath.Abs(f.cfg.Path)
	if err != nil {
		return fmt.Errorf("mesh config %s: %w", f.cfg.Path, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching mesh config %s: %w", f.cfg.Path, err)
	}
	defer fw.Close()
	w := &watch{root: abs, fsw: fw, logger: f.logger}

	w.sync()
	last := f.emit(out, "", false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var deadline time.Time // when a pending reload must happen; zero if none
	schedule := func() {
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(10 * f.cfg.Debounce)
		}
		timer.Reset(min(f.cfg.Debounce, deadline.Sub(now)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("mesh config watcher stopped")
			}
			if w.relevant(ev.Name) {
				schedule()
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("mesh config watcher stopped")
			}
			// An overflow loses events, and any error may; a full
			// reload makes up for what was lost.
			f.logger.Warn("watching mesh config", "path", f.cfg.Path, "error", err)
			schedule()
		case <-timer.C:
			deadline = time.Time{}
			w.sync()
			last = f.emit(out, last, true)
		}
	}
}

// absent stands for "the path does not exist" among Result digests.
const absent = "absent"

// emit loads the config and calls out, unless the input is the same as
// last time (editors' swap files, touched files, rewritten identical
// content). It returns the digest of what it loaded.
func (f *File) emit(out Sink, last string, skipSame bool) string {
	start := time.Now()
	var r model.Result
	digest := absent
	if _, err := os.Stat(f.cfg.Path); errors.Is(err, fs.ErrNotExist) {
		r = model.Result{Mesh: model.Empty()}
	} else {
		var skipped model.Skipped
		r, skipped = model.LoadManifestsCached(f.cfg.Path, ImportManifests, &f.parsed)
		digest = r.Digest
		if k := skipped.String(); k != f.skipped {
			f.skipped = k
			if k != "" {
				f.logger.Info("mesh config: objects of other kinds skipped", "path", f.cfg.Path, "skipped", k)
			}
		}
	}
	if skipSame && digest == last {
		f.logger.Debug("mesh config unchanged", "path", f.cfg.Path)
		return last
	}
	f.logger.Debug("mesh config read", "path", f.cfg.Path, "files", r.Files, "errors", len(r.Errors),
		"warnings", len(r.Warnings), "absent", digest == absent, "duration", time.Since(start))
	out(r)
	return digest
}

// watch keeps the watched directories in step with the path: the
// directory and all its (non-hidden) subdirectories; the directory holding
// the file; or, while the path does not exist, its nearest existing
// ancestor.
type watch struct {
	root   string
	fsw    *fsnotify.Watcher
	logger *slog.Logger
}

// sync adds watches for directories that should be watched and removes the
// others. Reloads happen after sync, so a file written into a directory
// before its watch was added is still read.
func (w *watch) sync() {
	want := w.dirs()
	for _, d := range w.fsw.WatchList() {
		if !want[d] {
			_ = w.fsw.Remove(d) // it may be gone already
		}
	}
	have := map[string]bool{}
	for _, d := range w.fsw.WatchList() {
		have[d] = true
	}
	for d := range want {
		if have[d] {
			continue
		}
		if err := w.fsw.Add(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.logger.Warn("cannot watch mesh config directory; changes in it are missed", "dir", d, "error", err)
		}
	}
}

// dirs lists the directories to watch now.
func (w *watch) dirs() map[string]bool {
	info, err := os.Stat(w.root)
	switch {
	case err == nil && info.IsDir():
		dirs := map[string]bool{}
		_ = filepath.WalkDir(w.root+string(filepath.Separator), func(p string, d fs.DirEntry, err error) error {
			p = filepath.Clean(p)
			switch {
			case err != nil || !d.IsDir():
				return nil
			case p != w.root && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			}
			dirs[p] = true
			return nil
		})
		return dirs
	case err == nil:
		return map[string]bool{filepath.Dir(w.root): true}
	}
	for d := filepath.Dir(w.root); ; d = filepath.Dir(d) {
		if info, err := os.Stat(d); err == nil && info.IsDir() {
			return map[string]bool{d: true}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// relevant reports whether an event on name may change what Load reads.
// Kubernetes mounts ConfigMaps as symlinks through a "..data" link that it
// swaps atomically, so names starting with ".." count; other hidden names
// (swap files) do not.
func (w *watch) relevant(name string) bool {
	sep := string(filepath.Separator)
	base := filepath.Base(name)
	switch {
	case name == w.root, strings.HasPrefix(w.root, name+sep):
		return true // the path itself, or a directory on the way to it
	case strings.HasPrefix(base, ".."):
		return true
	case !strings.HasPrefix(name, w.root+sep), strings.HasPrefix(base, "."):
		return false
	case model.IsConfigFile(base):
		return true
	}
	// A directory appeared, or something went away that may have been a
	// directory full of config.
	info, err := os.Stat(name)
	return err != nil || info.IsDir()
}
