package api

import "github.com/dashcache/dashcache"

// SetBeforeWait installs a hook that runs between a reader's failed cache check
// and its registration for the fill notification.
func SetBeforeWait(s *Server, fn func(dashcache.ReportKey)) { s.beforeWait = fn }
