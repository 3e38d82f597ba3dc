"""The "My exports" page (issue 17): server-rendered HTML, plain JavaScript, no build step."""
