-- Operators page through the applications in review in id order (src/onboarding/store.ts, listInReview);
-- the review index is in creation order, so each page read the key in order and passed every application
-- that is not in review. This one holds those in review only, in the order the page reads them.
create index onboarding_applications_in_review on onboarding_applications (id) where status = 'in_review';
