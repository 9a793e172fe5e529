mod at_rest;
