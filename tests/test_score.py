"""The one answer scorer: dates, numbers, durations, parties, containment vs precision."""

import pytest

from docfinetune.core.score import answer_matches, find_dates, normalize_answer


@pytest.mark.parametrize(
    "prediction",
    ["May 8, 2014", "5/8/14", "05/08/2014", "the 8th day of May 2014", "8 May, 2014", "2014-05-08",
     "This agreement was made on the eighth day of May, 2014."],
)
def test_dates_in_any_common_form_are_equal(prediction):
    assert answer_matches(prediction, "5/8/14", "agreement_date")


def test_different_dates_do_not_match():
    assert not answer_matches("May 9, 2014", "5/8/14")
    assert not answer_matches("May 8, 2015", "5/8/14")
    assert not answer_matches("8/5/14", "5/8/14")  # m/d/y: August 5


def test_blank_in_reference_is_a_wildcard_but_not_the_other_way():
    assert answer_matches("February ____, 2017", "02/[]/2017")
    assert answer_matches("February 15, 2017", "02/[]/2017")
    assert not answer_matches("February ____, 2017", "2/15/17")
    assert answer_matches("31 day of July, 2000", "07/31/2000; 07/[]/2000")  # one alternative is enough


def test_a_list_of_dates_does_not_match_everything():
    many = "May 8, 2014, June 1, 2015 and July 1, 2016"
    assert not answer_matches(many, "5/8/14")
    assert answer_matches("April 15, 2012 (three (3) years after 15 April, 2009)", "4/15/12")


@pytest.mark.parametrize("prediction", ["thirty (30) days", "30 days", "thirty days", "at least thirty (30) days' notice"])
def test_numbers_in_words(prediction):
    assert answer_matches(prediction, "30 days", "renewal_notice")


def test_durations_units_and_counts():
    assert answer_matches("one year", "12 months")
    assert answer_matches("additional one (1) year terms", "successive 1 year", "renewal_term")
    assert answer_matches("two (2) successive terms equal to five (5) years each", "2 successive 5 years", "renewal_term")
    assert not answer_matches("five (5) years", "2 successive 5 years", "renewal_term")  # the count is missing
    assert not answer_matches("sixty (60) days", "30 days")
    assert not answer_matches("30, 60, 90 or 120 days", "30 days")


def test_governing_law_containment_and_demonyms():
    assert answer_matches("the laws of the State of Nevada", "Nevada", "governing_law")
    assert answer_matches("English law", "England", "governing_law")
    assert answer_matches("the laws of England and Wales", "England, United Kingdom; Wales, United Kingdom", "governing_law")
    assert not answer_matches("the laws of England", "England, United Kingdom; Wales, United Kingdom", "governing_law")
    assert not answer_matches("the laws of the State of Texas", "Nevada", "governing_law")


def test_text_containment_is_bounded_by_length():
    assert answer_matches("Hennepin County, Minnesota", "Minnesota")
    assert not answer_matches(" ".join(["word"] * 60) + " Minnesota", "Minnesota")


def test_parties_each_name_must_appear_suffix_punctuation_ignored():
    ref = 'Snotarator LLC ("Company"); SMSA Ballinger Acquisition Corp., ("Distributor")'
    assert answer_matches("Snotarator, L.L.C. (the Company); SMSA Ballinger Acquisition Corp (the Distributor)", ref, "parties")
    assert answer_matches("SNOTARATOR LLC and SMSA BALLINGER ACQUISITION CORPORATION", ref, "parties")
    assert not answer_matches("Snotarator LLC (the Company)", ref, "parties")


def test_perpetual_and_money():
    assert answer_matches("an indefinite term", "perpetual", "expiration_date")
    assert not answer_matches("May 5, 2020", "perpetual", "expiration_date")
    assert answer_matches("$750,000.00", "750,000 dollars")
    assert normalize_answer("The Twenty-Four (24) Months!") == "24 months"


def test_a_value_restated_in_digits_and_fractions_in_words():
    # the reference writes the value twice, in words and in digits; an answer may write it once
    assert answer_matches("1.25% per month", "one and one-quarter percent (1.25%) per month", "fees")
    assert answer_matches("4%", "four percent (4%)", "fees")
    assert not answer_matches("5%", "four percent (4%)", "fees")
    assert answer_matches("$250,000", "two hundred fifty thousand dollars ($250,000)")
    assert answer_matches("one and a half years", "18 months")
    # "and" joins words into one number only after hundred/thousand/million
    assert normalize_answer("one hundred and five days") == "105 days"
    assert not answer_matches("2 days", "one and one days")


def test_find_dates_spans_and_two_digit_years():
    [(date, start, end)] = find_dates("signed on 3-31-16 by both")
    assert (date.year, date.month, date.day) == (2016, 3, 31) and (start, end) == (10, 17)
    assert find_dates("12/14/98")[0][0].year == 1998
    assert find_dates("see section 5.3.2 and 2/3") == []
