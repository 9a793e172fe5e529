DROP TABLE form_keys;
DROP TABLE email_outbox;
DROP TABLE anonymous_links;
DROP TABLE account_tokens;
