package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// ErrDiskFull is returned by Writable when the store has reached its size
// bound or its filesystem is nearly full: new calls are refused rather than
// answered and then lost.
var ErrDiskFull = errors.New("store is out of disk space")

// minFreeBytes is the free space the store keeps on its filesystem: below
// it, new records are refused (Badger needs room to flush and compact).
const minFreeBytes = 64 << 20

// Writable reports whether the store takes new records: ErrDiskFull (with
// the reason) when its data reached Options.MaxDisk or its filesystem has
// less than 64 MiB free. It reads a figure refreshed every second.
func (s *Store) Writable() error {
	if p := s.full.Load(); p != nil {
		return *p
	}
	return nil
}

// DiskUsage is the space the store's files take on disk.
func (s *Store) DiskUsage() int64 { return s.diskUsed.Load() }

// watchDisk refreshes the figures Writable reads.
func (s *Store) watchDisk() {
	defer s.done.Done()
	if s.opts.InMemory {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.checkDisk()
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

func (s *Store) checkDisk() {
	if s.opts.InMemory {
		return
	}
	used := dirUsage(s.opts.Dir)
	s.diskUsed.Store(used)
	var reason error
	if s.opts.MaxDisk > 0 && used >= s.opts.MaxDisk {
		reason = fmt.Errorf("%w: it holds %d bytes, the bound (--max-disk) is %d", ErrDiskFull, used, s.opts.MaxDisk)
	} else if free, ok := freeBytes(s.opts.Dir); ok && free < minFreeBytes {
		reason = fmt.Errorf("%w: %d bytes free on the filesystem of %s", ErrDiskFull, free, s.opts.Dir)
	}
	was := s.full.Load() != nil
	if reason == nil {
		s.full.Store(nil)
		if was {
			s.log.Info().Int64("bytes", used).Msg("store has room again: accepting calls")
		}
		return
	}
	s.full.Store(&reason)
	if !was {
		s.log.Error().Err(reason).Msg("store is full: refusing new calls until space returns")
	}
}

// dirUsage sums the disk blocks of the files under dir (Badger's value log
// files are sparse while being written: their length overstates them).
func dirUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			} else {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
