mod at_rest;
mod retention;
mod usernames;
