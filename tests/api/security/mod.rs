mod at_rest;
mod retention;
