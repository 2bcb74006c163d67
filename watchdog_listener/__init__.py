"""The supervisord event listener that restarts a hung worker and stops a crash loop
(``listener``); ``report`` is the state file it leaves for /status."""
