"""Where finished assets live and the URLs they are served at."""
